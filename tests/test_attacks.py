"""Attacks: parameters, the eps ball, [0, 1], and that they really attack."""
import pytest
import torch
from torch import nn

from pytest_hac.attacks import ATTACKS, build_attack, make_spec, parse_eps
from pytest_hac.errors import HacError
from pytest_hac.models import Classifier


def small_model() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(128, 10))
    return Classifier(net, mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=10, input_size=16, resize_size=16,
                      label_space="index", name="small")


@pytest.mark.parametrize("name", sorted(e.name for e in ATTACKS))
def test_every_attack_stays_in_its_ball_and_the_pixel_range(name):
    model = small_model()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    eps = 0.5 if ATTACKS.entry(name).meta["norm"] == "L2" else 8 / 255
    spec = make_spec(name, eps, steps=5 if name not in ("fgsm",) else None)
    torch.manual_seed(0)
    adv = build_attack(model, spec)(x, y)
    assert adv.shape == x.shape and 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0
    delta = (adv - x).flatten(1)
    if name == "cw":
        return  # torchattacks' CW is unbounded: the engine projects it onto the ball (tested below)
    if spec.norm == "Linf":
        assert float(delta.abs().max()) <= eps + 1e-6
    else:
        assert float(delta.norm(dim=1).max()) <= eps + 1e-4


def test_engine_projects_unbounded_attacks_onto_the_ball():
    from pytest_hac.engine import project

    x = torch.rand(3, 3, 8, 8)
    wild = (x + torch.randn_like(x)).clamp(0, 1)
    linf = project(wild, x, make_spec("pgd", "4/255"))
    assert float((linf - x).abs().max()) <= 4 / 255 + 1e-6
    l2 = project(wild, x, make_spec("cw", 0.5))
    assert float((l2 - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fgsm", "ifgsm", "pgd", "apgd", "apgd-dlr", "square"])
def test_attacks_reduce_undefended_accuracy(name):
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    model = get_model("efficientnet-lite0")
    data = load_dataset("embedded", resize=256, crop=224).subset(6, 0)
    with torch.inference_mode():
        clean = (model(data.images).argmax(1) == data.labels).sum().item()
    spec = make_spec(name, "8/255", steps={"square": 50, "fgsm": None}.get(name, 5))
    torch.manual_seed(0)
    adv = build_attack(model, spec)(data.images, data.labels)
    with torch.inference_mode():
        attacked = (model(adv).argmax(1) == data.labels).sum().item()
    assert clean >= 4 and attacked < clean


@pytest.mark.parametrize("text, value", [("4/255", 4 / 255), (" 8 / 255 ", 8 / 255), ("0.03", 0.03), (0.5, 0.5),
                                         (0, 0.0)])
def test_eps_accepts_fractions(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-1/255", "abc", "4/0", True, None])
def test_eps_rejects_nonsense(text):
    with pytest.raises(HacError):
        parse_eps(text)


def test_autoattack_uses_nine_target_classes_like_the_reference():
    attack = build_attack(small_model(), make_spec("autoattack", "4/255"))
    targeted = [a for a in attack._autoattack.attacks if hasattr(a, "n_target_classes")]
    assert targeted and all(a.n_target_classes == 9 for a in targeted)
