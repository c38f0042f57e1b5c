"""Verdicts you can trust: attacks get every parameter they are given, keep their budget, leave the RNG alone,
and the engine measures what the soundness checks need. Small: tiny-cnn on 16 digits at 32 px."""
import math

import pytest
import torch

from pytest_hac.attacks import make_spec
from pytest_hac.codecs import get_codec, to_uint8
from pytest_hac.codecs.base import Identity
from pytest_hac.codecs.jpeg import Jpeg
from pytest_hac.core.cells.cases import Case, expand
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.engine.probes import PROBE_EPS
from pytest_hac.core.engine.targets import Defended
from pytest_hac.errors import HacError
from pytest_hac.registry import register_attack, register_codec

DIGITS = 16  # the digits of the ``data`` fixture (tests/unit/conftest.py)


def cell(codec, quality, threat, spec, **kw):
    q = "" if quality is None else f"-q{quality}"
    return Case(codec, quality, 1, threat, spec, id=f"{codec}{q}-r1-{threat}-{spec.name}", **kw)


def engine(model, data, **kw):
    return Engine(model, data, batch_size=16, **kw)


def predictions(model, images):
    with torch.inference_mode():
        return model(images).argmax(1)


class Noisy(Identity):
    """A random defense: seeded Gaussian noise, then an 8-bit file."""

    name = "noisy"
    stochastic = True

    def roundtrip(self, x):
        return to_uint8(x + 0.05 * torch.randn_like(x)), torch.full((len(x),), 8.0, dtype=torch.float64)

    def approximate(self, x):
        return (x + 0.05 * torch.randn_like(x)).clamp(0, 1)


class Inverting(Identity):
    """A codec whose differentiable stand-in is visibly wrong (a negative); the real thing is an 8-bit file."""

    name = "inverting"

    def roundtrip(self, x):
        return to_uint8(x), torch.full((len(x),), 24.0, dtype=torch.float64)

    def approximate(self, x):
        return 1 - x


class MaskedJpeg(Jpeg):
    """Real JPEG whose "differentiable" path is the real codec: zero gradient (gradient masking)."""

    def approximate(self, x):
        real, _ = self.roundtrip(x.detach())
        return real.clone() + 0 * x


# --- 1. restarts --------------------------------------------------------------------------------------


def test_pgd_restarts_are_real_restarts_and_never_raise_accuracy(model, data):
    e = engine(model, data)
    one = e.evaluate(cell("jpeg", 50, "oblivious", make_spec("pgd", "8/255", steps=3)))
    assert e.counters.attack_batches == 1
    five = cell("jpeg", 50, "oblivious", make_spec("pgd", "8/255", steps=3, restarts=5))
    more = e.evaluate(five)
    assert e.counters.attack_batches == 5  # restart 0 is the restarts=1 attack: reused, 4 new ones
    sets = e.adversarial(five)
    assert len(sets) == 5 and all(not torch.equal(sets[0], s) for s in sets[1:])  # not one attack run 5 times
    assert all(m <= o for m, o in zip(more.correct, one.correct))
    assert more.diagnostics.restarts[0] == sum(one.correct) and len(more.diagnostics.restarts) == 5
    assert sum(more.correct) <= min(more.diagnostics.restarts)
    assert more.spec.restarts == 5


def test_a_restart_that_fools_the_pipeline_counts_per_image(model, data, registries):
    """An image is correct only if the evaluated pipeline (JPEG + model) is right on every restart."""
    import torchattacks

    def coin(target, spec):
        bim = torchattacks.BIM(target, eps=spec.eps, alpha=spec.eps / 4, steps=5)

        def attack(x, y):  # heads: a real attack; tails: nothing. Restarts draw new coins.
            heads = (torch.rand(len(x)) < 0.5).view(-1, 1, 1, 1).to(x.device)
            return torch.where(heads, bim(x, y), x)

        return attack

    register_attack("coin", coin, random_start=True)
    e = engine(model, data)
    one = e.evaluate(cell("jpeg", 90, "oblivious", make_spec("coin", "16/255")))
    case = cell("jpeg", 90, "oblivious", make_spec("coin", "16/255", restarts=6))
    six = e.evaluate(case)
    assert six.accuracy < one.accuracy
    jpeg = get_codec("jpeg", 90)
    right = torch.stack([predictions(model, jpeg.roundtrip(adv)[0]) == data.labels for adv in e.adversarial(case)])
    assert six.correct == tuple(right.all(0).tolist())  # the worst case per image, judged by the real pipeline
    assert list(six.diagnostics.restarts) == right.sum(1).tolist()


def test_restart_sets_are_shared_by_every_defense(model, data):
    e = engine(model, data)
    spec = make_spec("pgd", "4/255", steps=2, restarts=3)
    for q in (25, 50, 75):
        e.evaluate(cell("jpeg", q, "oblivious", spec))
    assert e.counters.attack_batches == 3


# --- 1. eot ------------------------------------------------------------------------------------------


def test_eot_runs_against_a_stochastic_codec_and_is_refused_for_a_deterministic_one(model, data, registries):
    import torchattacks

    from pytest_hac.attacks import build_attack

    register_codec("noisy", lambda q, **_: Noisy(), description="seeded noise")
    spec = make_spec("pgd", "8/255", steps=2, eot=3)
    attack = build_attack(model, spec)
    assert isinstance(attack, torchattacks.EOTPGD) and attack.eot_iter == 3
    (case,) = expand({"codecs": {"noisy": []}, "threats": ["adaptive"], "attack": "pgd", "eps": "8/255", "steps": 2,
                      "eot": 3}, {})
    first = engine(model, data).evaluate(case)
    again = engine(model, data).evaluate(case)
    assert first.correct == again.correct and first.spec.eot == 3  # seeded: the noise is reproducible
    # a random codec's cells say what they averaged: 3 decodes per gradient; a clean cell none
    assert first.diagnostics.eot_samples == 3 and first.diagnostics.to_dict()["eot_samples"] == 3
    (clean,) = expand({"codecs": {"noisy": []}, "threats": ["clean"]}, {})
    assert engine(model, data).evaluate(clean).diagnostics.eot_samples == 0
    (jpeg,) = expand({"codecs": {"jpeg": [50]}, "threats": ["whitebox"], "attack": "pgd", "eot": 3}, {})
    with pytest.raises(HacError, match="eot=3 \\(attack 'pgd'\\).*codec 'jpeg' is deterministic"):
        engine(model, data).evaluate(jpeg)


# --- 2. seeds and the global RNG ------------------------------------------------------------------------


def test_attacks_leave_the_global_rng_alone_and_follow_the_seed(model, data, registries):
    register_codec("noisy", lambda q, **_: Noisy(), description="seeded noise")
    specs = {"apgd": make_spec("apgd", "8/255", steps=3), "square": make_spec("square", "8/255", queries=20),
             "pgd": make_spec("pgd", "8/255", steps=2)}

    def adversarial(seed):
        e = engine(model, data, seed=seed)
        out = {}
        for name, spec in specs.items():
            c = cell("jpeg", 50, "query" if name == "square" else "oblivious", spec)
            e.evaluate(c)
            out[name] = e.adversarial(c)[0]
        e.evaluate(Case("noisy", None, 1, "clean", None, id="noisy-r1-clean"))  # a random codec, too
        return out

    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = adversarial(seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    same, other = adversarial(seed=0), adversarial(seed=1)
    for name in specs:
        assert torch.equal(first[name], same[name]), name
        assert not torch.equal(first[name], other[name]), name  # --hac-seed reaches apgd and square too


# --- 3. best-loss iterates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["apgd", "apgd-dlr"])
def test_oblivious_apgd_perturbs_every_image(model, data, name):
    """torchattacks returns the clean image wherever the bare model was not fooled: useless against a defense."""
    e = engine(model, data)
    case = cell("jpeg", 50, "oblivious", make_spec(name, "1/255", steps=3))
    e.evaluate(case)
    (adv,) = e.adversarial(case)
    moved = (adv - data.pixels()).flatten(1).abs().amax(1)
    assert bool((moved > 0).all()) and float(moved.max()) <= 1 / 255 + 1e-6


def test_autoattack_keeps_the_best_loss_iterate_where_nothing_fools(model, data):
    from pytest_hac.attacks import build_attack

    attack = build_attack(model, make_spec("autoattack", "1/255", steps=2))
    attack.attacks[-1].n_queries = 10  # Square: keep the test small
    x, y = data.pixels(0, 6), data.labels[:6]
    torch.manual_seed(0)
    adv = attack(x, y)
    moved = (adv - x).flatten(1).abs().amax(1)
    assert bool((moved > 0).all()) and float(moved.max()) <= 1 / 255 + 1e-6


# --- 4. minimum-norm cw ------------------------------------------------------------------------------------


def test_cw_is_a_minimum_norm_attack_with_a_median_l2(model, data):
    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": "cw", "steps": 5}, {"eps": "4/255"})
    assert case.id == "jpeg-q50-r1-oblivious-cw-s5" and case.attack.eps is None
    e = engine(model, data)
    r = e.evaluate(case)
    (adv,) = e.adversarial(case)
    norms = (adv - data.pixels()).flatten(1).double().norm(dim=1)
    assert r.eps is None and r.spec.min_norm is True and r.spec.eps is None
    # an image the pipeline still gets right counts as needing an infinite perturbation
    counted = norms.masked_fill(torch.tensor(r.correct), float("inf")).median()
    assert (r.median_l2 is None) == (not torch.isfinite(counted).item())
    if r.median_l2 is not None:
        assert r.median_l2 == pytest.approx(float(counted)) and r.median_l2 > 0
    (bare,) = expand({"codecs": {"identity": []}, "threats": ["oblivious"], "attack": "cw", "steps": 50}, {})
    undefended = e.evaluate(bare)
    assert undefended.accuracy < 0.5 and 0 < undefended.median_l2 < 10  # most fooled: a finite median
    assert r.diagnostics.large_eps is None and r.diagnostics.undefended_large_eps is None
    assert r.diagnostics.zero_gradient.of == len(data)
    bounded = e.evaluate(cell("jpeg", 50, "oblivious", make_spec("pgd", "4/255", steps=2)))
    assert bounded.median_l2 is None and bounded.spec.min_norm is False


# --- 5. the budget is asserted ----------------------------------------------------------------------------


def test_an_attack_that_leaves_its_ball_is_an_error_not_a_clipped_attack(model, data, registries):
    register_attack("overshoot", lambda target, spec: (lambda x, y: (x + 2 * spec.eps).clamp(0, 1)))
    with pytest.raises(HacError, match=r"attack 'overshoot' left its Linf ball of eps 4/255: the largest "
                                       r"perturbation exceeds eps by 0\.0157"):
        engine(model, data).evaluate(cell("jpeg", 50, "oblivious", make_spec("overshoot", "4/255")))
    register_attack("overflow", lambda target, spec: (lambda x, y: x + 0.5))
    with pytest.raises(HacError, match=r"attack 'overflow' returned pixels outside \[0, 1\]"):
        engine(model, data).evaluate(cell("identity", None, "oblivious", make_spec("overflow", 0.9)))


# --- 6. soundness measurements -----------------------------------------------------------------------------


def test_whitebox_diagnostics_schema_and_reuse(model, data):
    e = engine(model, data)
    r = e.evaluate(cell("jpeg", 50, "whitebox", make_spec("pgd", "4/255", steps=2)))
    n = len(data)
    assert set(r.diagnostics.to_dict()) == {"restarts", "zero_gradient", "large_eps", "undefended_large_eps",
                                            "stand_in"}
    assert r.diagnostics.restarts == (sum(r.correct),)
    # kornia's differentiable JPEG computes libjpeg's function: well inside the tolerance, on the first 32 images
    stand_in = r.diagnostics.stand_in
    assert stand_in.n == min(n, 32) and stand_in.rounds == 1 and 0 < stand_in.distance <= stand_in.worst < 0.7
    assert r.diagnostics.zero_gradient.to_dict() == {"images": 0, "of": n}
    large, undefended = r.diagnostics.large_eps, r.diagnostics.undefended_large_eps
    assert large.eps == PROBE_EPS and large.n == min(n, 32) and 0 <= large.correct <= large.n
    assert undefended.eps == 64 / 255 and undefended.n == min(n, 64)
    assert large.correct <= 2 and undefended.correct <= 2  # honest gradients break tiny-cnn at large eps
    assert e.counters.attack_batches == 1 and e.counters.probe_batches > 0
    # another eps on the same defense, and an oblivious cell: every probe is reused
    probes = e.counters.probe_batches
    again = e.evaluate(cell("jpeg", 50, "whitebox", make_spec("pgd", "2/255", steps=2)))
    assert again.diagnostics.large_eps == large and again.diagnostics.undefended_large_eps == undefended
    oblivious = e.evaluate(cell("jpeg", 75, "oblivious", make_spec("pgd", "2/255", steps=2)))
    assert oblivious.diagnostics.large_eps is None and oblivious.diagnostics.undefended_large_eps == undefended
    assert e.counters.probe_batches == probes + 1  # only the bare model's zero-gradient check is new
    query = e.evaluate(cell("jpeg", 50, "query", make_spec("square", "4/255", queries=5)))
    assert set(query.diagnostics.to_dict()) == {"restarts"}  # nothing gradient-based to probe


def test_masked_gradients_show_in_the_diagnostics(model, data, registries):
    register_codec("masked-jpeg", lambda q, **_: MaskedJpeg(q), qualities=range(1, 101))
    e = engine(model, data)
    r = e.evaluate(cell("masked-jpeg", 50, "whitebox", make_spec("pgd", "4/255", steps=2)))
    assert r.diagnostics.zero_gradient.to_dict() == {"images": len(data), "of": len(data)}
    # a 64/255 attack that leaves most images correct (its random start alone fools a few): masking
    assert r.diagnostics.large_eps.correct > len(data) / 2
    assert r.diagnostics.undefended_large_eps.correct <= 2  # while the bare model breaks


def test_l2_probes_scale_eps_by_the_image_size(model, data):
    r = engine(model, data).evaluate(cell("jpeg", 50, "whitebox", make_spec("pgdl2", 0.5, steps=2)))
    size = math.sqrt(3 * 32 * 32)
    assert r.diagnostics.large_eps.eps == pytest.approx(64 / 255 * size)
    assert r.diagnostics.undefended_large_eps.eps == pytest.approx(64 / 255 * size)


def test_steps_2x_only_when_thorough(model, data):
    spec = make_spec("pgd", "4/255", steps=2)
    plain = engine(model, data).evaluate(cell("jpeg", 50, "oblivious", spec))
    assert plain.diagnostics.steps_2x is None
    e = engine(model, data, soundness="thorough")
    r = e.evaluate(cell("jpeg", 50, "oblivious", spec))
    assert r.diagnostics.steps_2x.steps == 4 and len(r.diagnostics.steps_2x.correct) == len(data)
    assert e.counters.attack_batches == 1  # the rerun counts as a probe
    four = e.evaluate(cell("jpeg", 50, "oblivious", make_spec("pgd", "4/255", steps=4)))
    assert four.correct == r.diagnostics.steps_2x.correct  # the same attack, reused
    asked = engine(model, data).evaluate(cell("jpeg", 50, "oblivious", spec, thorough=True))
    assert asked.diagnostics.steps_2x == r.diagnostics.steps_2x
    with pytest.raises(HacError, match="soundness must be one of"):
        engine(model, data, soundness="strict")


# --- 7. gradient paths: approximate for gradients, the real codec for verdicts -------------------------------


@pytest.mark.parametrize("rounds", [1, 2])
def test_bpda_forward_is_the_real_codec_and_its_gradient_flows(data, rounds):
    jpeg = get_codec("jpeg", 50)
    x = data.pixels(0, 4).requires_grad_(True)
    out = Defended(torch.nn.Identity(), jpeg, rounds, "bpda")(x)
    real = data.pixels(0, 4)
    for _ in range(rounds):
        real = jpeg.roundtrip(real)[0]
    assert torch.allclose(out.detach(), real, atol=1e-6)
    out.square().sum().backward()
    assert float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("threat", ["whitebox", "adaptive"])
def test_informed_attacks_are_judged_through_the_real_codec(model, data, registries, threat):
    register_codec("inverting", lambda q, **_: Inverting(), description="its approximation is a negative")
    e = engine(model, data)
    case = cell("inverting", None, threat, make_spec("pgd", "4/255", steps=2))
    r = e.evaluate(case)
    sets = e.adversarial(case)
    assert len(sets) == (3 if threat == "adaptive" else 1)  # adaptive, one round: BPDA twice and the white-box attack
    real = torch.stack([predictions(model, Inverting().roundtrip(adv)[0]) == data.labels for adv in sets]).all(0)
    approximated = torch.stack([predictions(model, Inverting().approximate(adv)) == data.labels
                                for adv in sets]).all(0)
    assert r.correct == tuple(real.tolist())
    assert r.correct != tuple(approximated.tolist())  # the two paths differ visibly: the test means something


def test_a_worst_case_cell_is_right_only_where_every_part_is(model, data):
    (*parts, worst) = expand({"codecs": {"jpeg": [50]}, "threats": ["clean", "oblivious", "whitebox", "worst"],
                              "steps": 2, "eps": "8/255"}, {})
    e = engine(model, data)
    results = [e.evaluate(p) for p in parts]
    combined = e.evaluate(worst)
    assert combined.correct == tuple(all(flags) for flags in zip(*(r.correct for r in results)))
    assert combined.accuracy <= min(r.accuracy for r in results)
    assert combined.diagnostics.cells == tuple(p.id for p in parts) and combined.bpp == results[0].bpp



def test_large_eps_probe_does_not_flag_kornias_differentiable_jpeg(model, data):
    from pytest_hac.core.judge.soundness import check

    r = engine(model, data).evaluate(cell("jpeg-kornia", 50, "whitebox", make_spec("pgd", "4/255", steps=10)))
    assert "large-eps-through-defense" not in [f.check for f in check([r])], r.diagnostics.large_eps
