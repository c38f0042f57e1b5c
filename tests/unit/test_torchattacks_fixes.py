"""The torchattacks fixes against the installed torchattacks: the one patch of a dependency's module global
(APGD's ``torch``, swapped for per-image draws) still reaches APGD's random start; the fixed attacks are
plain classes, loaded only when an attack is built; their registrations declare what they do."""
import ast
import inspect
import textwrap

import pytest
import torch
from torch import nn

from pytest_hac.attacks import attack_info, build_attack, make_spec
from pytest_hac.models import Classifier
from pytest_hac.registry import ATTACKS, AttackInfo


def small_model() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    return Classifier(net, mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=10, input_size=8, resize_size=8,
                      label_space="index", name="small")


def test_importing_pytest_hac_and_registering_attacks_does_not_import_torchattacks(fresh_import):
    assert "apgd" in fresh_import["attacks"] and "torchattacks" not in fresh_import["modules"]


def test_apgd_still_draws_its_random_start_from_its_module_global_torch():
    """``torchattacks_fixes._per_image_draws`` swaps the APGD module's global ``torch`` during the call. If
    torchattacks renames that global, imports ``rand`` directly or draws its start another way, per-image
    starts would silently fall back to the batch's RNG: this test fails first."""
    from torchattacks.attacks import apgd

    from pytest_hac.attacks import torchattacks_fixes as fixes

    assert apgd.torch is torch  # a module global named torch, and it is the torch module
    start = inspect.getsource(apgd.APGD.attack_single_run)
    assert "torch.rand(x.shape)" in start  # the L-inf start, one draw for the whole batch
    assert "torch.randn(x.shape)" in start  # the L2 start
    assert issubclass(fixes.BestLossAPGD, apgd.APGD)
    # best_loss=True (what BestLossAPGD asks for) must not reseed the RNG the engine seeded per batch
    perturb = ast.parse(textwrap.dedent(inspect.getsource(apgd.APGD.perturb)))
    reseeds = [node for node in ast.walk(perturb) if isinstance(node, ast.If)
               and ast.unparse(node.test) == "not best_loss" and "manual_seed" in ast.unparse(node)]
    assert reseeds, "APGD.perturb no longer reseeds under `if not best_loss:`"
    outside = [n for n in ast.walk(perturb) if isinstance(n, ast.Call) and "manual_seed" in ast.unparse(n.func)]
    inside = [n for block in reseeds for n in ast.walk(block) if isinstance(n, ast.Call)
              and "manual_seed" in ast.unparse(n.func)]
    assert len(outside) == len(inside)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_apgd_start_is_drawn_per_image(norm):
    """An image's adversarial example is the same alone and second in a batch: its start comes from its seed."""
    from pytest_hac.attacks.torchattacks_fixes import BestLossAPGD

    model = small_model()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3, 7])
    attack = BestLossAPGD(model, norm=norm, eps=8 / 255 if norm == "Linf" else 0.5, steps=2, n_restarts=1, loss="ce")
    attack.image_seeds = [11, 22]
    torch.manual_seed(0)
    both = attack(x, y)
    attack.image_seeds = [22]
    torch.manual_seed(0)
    alone = attack(x[1:], y[1:])
    from torchattacks.attacks import apgd

    assert apgd.torch is torch  # restored after the call
    assert torch.allclose(both[1], alone[0], atol=1e-6)


def test_registrations_declare_what_the_fixed_attacks_do():
    """``per_image_seeds`` is declared exactly for the attacks that take ``image_seeds``; the best-iterate fixes
    say so; a user's registration declares neither."""
    model = small_model()
    per_image, best = set(), set()
    for name in sorted(e.name for e in ATTACKS if e.factory.__module__ == "pytest_hac.attacks.builtin"):
        info = attack_info(name)
        eps = None if info.min_norm else 0.5 if info.norm == "L2" else 8 / 255
        for eot in (1, 2) if info.takes_eot else (1,):
            attack = build_attack(model, make_spec(name, eps, eot=eot))
            assert info.per_image_seeds == hasattr(attack, "image_seeds"), (name, eot)
            if info.per_image_seeds or info.best_iterate:
                assert type(attack).__module__ == "pytest_hac.attacks.torchattacks_fixes", name
        per_image |= {name} if info.per_image_seeds else set()
        best |= {name} if info.best_iterate else set()
    assert per_image == {"pgd", "pgdl2", "apgd", "apgd-dlr"}
    assert best == {"apgd", "apgd-dlr", "square", "autoattack"}
    assert not AttackInfo().per_image_seeds and not AttackInfo().best_iterate


@pytest.mark.parametrize("name", ["pgd", "pgdl2"])
def test_stop_keeps_the_first_broken_iterate_and_steps_only_the_others(name):
    """With ``stop`` (a probe's "until broken"), an image the check calls broken keeps that iterate and leaves the
    batch: later steps see only the others; without it, each step sees every image."""
    model = small_model()
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)  # every image starts correct
    spec = make_spec(name, "64/255" if name == "pgd" else "3.0", steps=6)
    seen: list[int] = []
    attack = build_attack(model, spec)
    attack.image_seeds = list(range(6))
    full = attack(x, y)
    attack.stop = lambda adv, labels, logits: (seen.append(len(adv)), logits.argmax(1) != labels)[1]
    stopped = attack(x, y)
    assert seen[0] == 6 and seen == sorted(seen, reverse=True) and seen[-1] < 6  # the batch shrinks
    assert (model(stopped).argmax(1) != y).sum() >= (model(full).argmax(1) != y).sum()  # no weaker at its question
    frozen = model(stopped).argmax(1) != y
    assert frozen.any()
    budget = (stopped - x).abs().amax() if name == "pgd" else (stopped - x).flatten(1).norm(dim=1).max()
    assert budget <= spec.eps + 1e-6 and stopped.min() >= 0 and stopped.max() <= 1
