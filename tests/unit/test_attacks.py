"""Attacks: parameters, the eps ball, [0, 1], and that they really attack."""
import pytest
import torch
from torch import nn

from pytest_hac.attacks import attack_info, build_attack, make_spec, parse_eps
from pytest_hac.attacks.budget import check_budget
from pytest_hac.errors import HacError
from pytest_hac.models import Classifier
from pytest_hac.registry import ATTACKS


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
    info = attack_info(name)
    eps = None if info.min_norm else 0.5 if info.norm == "L2" else 8 / 255
    spec = make_spec(name, eps, steps=5 if info.takes_steps else None)
    torch.manual_seed(0)
    adv = build_attack(model, spec)(x, y)
    assert adv.shape == x.shape and 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0
    check_budget(adv, x, spec)  # raises outside [0, 1] or the eps ball (min-norm attacks: [0, 1] only)
    delta = (adv - x).flatten(1)
    if spec.norm == "Linf" and eps is not None:
        assert float(delta.abs().max()) <= eps + 1e-6
    elif eps is not None:
        assert float(delta.norm(dim=1).max()) <= eps + 1e-4


def test_the_budget_is_checked_not_clipped():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    spec = make_spec("pgd", "4/255")
    check_budget((x + 4 / 255).clamp(0, 1), x, spec)  # on the boundary: fine
    with pytest.raises(HacError, match=r"'pgd' left its Linf ball of eps 4/255.*exceeds eps by 0\.0157"):
        check_budget(x + 8 / 255, x, spec)
    l2 = make_spec("pgdl2", 0.5)
    with pytest.raises(HacError, match=r"'pgdl2' left its L2 ball of eps 0\.5"):
        check_budget(x + 0.1, x, l2)  # L2 norm 0.1 * sqrt(192) = 1.39
    with pytest.raises(HacError, match=r"outside \[0, 1\]"):
        check_budget(x * 3, x, make_spec("cw"))  # min-norm: no ball, but still [0, 1]
    check_budget(torch.zeros_like(x), x, make_spec("cw"))


@pytest.mark.parametrize("name", ["fgsm", "ifgsm", "pgd", "apgd", "apgd-dlr", "square"])
def test_attacks_reduce_undefended_accuracy(name):
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    model = get_model("tiny-cnn")
    data = load_dataset("digits", resize=model.resize_size, crop=model.input_size, samples=16)
    with torch.inference_mode():
        clean = (model(data.pixels()).argmax(1) == data.labels).sum().item()
    # digits resist small budgets (their usual one is 0.3 = 77/255): 32/255 must break most of them
    spec = make_spec(name, "32/255", steps={"square": 50, "fgsm": None}.get(name, 5))
    torch.manual_seed(0)
    adv = build_attack(model, spec)(data.pixels(), data.labels)
    with torch.inference_mode():
        attacked = (model(adv).argmax(1) == data.labels).sum().item()
    assert clean >= 14 and attacked <= clean // 2


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
    targeted = [a for a in attack.attacks if hasattr(a, "n_target_classes")]
    assert targeted and all(a.n_target_classes == 9 for a in targeted)


def test_autoattack_passes_its_steps_to_every_gradient_component():
    import torchattacks

    attack = build_attack(small_model(), make_spec("autoattack", "4/255", steps=7))
    gradient = [a for a in attack.attacks if not isinstance(a, torchattacks.Square)]
    assert len(gradient) == 3 and all(a.steps == 7 for a in gradient)  # torchattacks' AutoAttack runs 10
    (square,) = [a for a in attack.attacks if isinstance(a, torchattacks.Square)]
    assert square.n_queries == 5000
