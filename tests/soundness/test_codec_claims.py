"""What a codec declares is checked, not trusted: its determinism when it is built, its stand-in against its
decoded images (calibrated on every codec that ships), and each gradient path of a cell on its own."""
import pytest
import torch
from compressai.zoo.image import model_architectures

from pytest_hac.attacks import Threat, make_spec
from pytest_hac.codecs import get_codec
from pytest_hac.codecs.compressai_codec import CompressAICodec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.judge.soundness import STAND_IN_DISTANCE, check
from pytest_hac.errors import HacError


def cell(codec, quality, threat, spec=None):
    return Case(codec, quality, 1, Threat.of(threat), spec, id=f"{codec}-q{quality}-r1-{threat}")


# --- determinism ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, says", [
    ("random-quality-jpeg", r"decoding the same 7 probe images twice gave different images \(up to \d+ 8-bit levels"),
    ("seeded-noise-jpeg", r"decoding the same 7 probe images twice gave different images"),
    ("batch-jpeg", r"an image decodes differently alone than beside other images .*code each image of a batch on its "
                   r"own"),
])
def test_a_codec_that_lies_about_being_deterministic_is_refused_when_built(planted_codecs, name, says):
    before = torch.random.get_rng_state()
    with pytest.raises(HacError, match=rf"codec {name}-q50 says it is deterministic \(stochastic = False\), but "
                                       rf"{says}"):
        get_codec(name, 50)
    assert torch.equal(torch.random.get_rng_state(), before)  # the check leaves torch's generator alone


def test_the_random_draw_fix_names_eot(planted_codecs):
    with pytest.raises(HacError, match=r"declare `stochastic = True` on the codec's class and attack it with EOT"):
        get_codec("random-quality-jpeg", 50)


def test_a_codec_that_says_it_is_random_is_built(planted_codecs):
    from .planted import RandomQualityJpeg

    class Honest(RandomQualityJpeg):
        stochastic = True

    from pytest_hac.registry import register_codec

    register_codec("honest-random", lambda q, **_: Honest(q), qualities=range(1, 101), replace=True)
    assert get_codec("honest-random", 50).stochastic


# --- the stand-in against the decoded image ------------------------------------------------------------------

#: Small random-weight sizes of each zoo architecture (as in tests/unit/test_learned_codecs.py).
ZOO_SMALL = {"bmshj2018-factorized": {"N": 8, "M": 12}, "bmshj2018-hyperprior": {"N": 16, "M": 24},
             "mbt2018-mean": {"N": 16, "M": 24}, "mbt2018": {"N": 16, "M": 24}, "cheng2020-anchor": {"N": 16},
             "cheng2020-attn": {"N": 16}}


def stand_in(engine, codec, rounds=1, n=16):
    relative, _ = engine.passes.stand_in(codec, rounds, n)
    return float(relative.median())


def test_no_shipped_codec_is_flagged_and_a_blur_for_jpeg_q10_is(model, digits, planted_codecs):
    e = Engine(model, digits, batch_size=16)
    # a sample of the grid the tolerance was calibrated on (soundness.STAND_IN_DISTANCE says the whole one)
    shipped = {(c, q, r): e.codec(c, q) for c, q, r in
               [("jpeg", q, r) for q in (5, 75, 95) for r in (1, 3)] + [("jpeg-kornia", 90, 1)]
               + [(k, q, r) for k in ("tiny-mse", "tiny-hific") for q, r in ((1, 1), (2, 3), (3, 2))]}
    distances = {key: stand_in(e, codec, key[2]) for key, codec in shipped.items()}
    for arch, size in ZOO_SMALL.items():  # built directly: the autoregressive ones decode slowly
        torch.manual_seed(0)
        distances[(arch, None, 1)] = stand_in(e, CompressAICodec(model_architectures[arch](**size), name=arch), n=4)
    assert max(distances.values()) < STAND_IN_DISTANCE, distances
    assert distances[("jpeg", 75, 3)] > 0.2  # kornia's JPEG is not libjpeg: the farthest honest pair, and measured
    assert stand_in(e, e.codec("blur-jpeg", 10)) > STAND_IN_DISTANCE


def test_a_false_stand_in_is_a_finding_on_every_cell_that_follows_it(model, digits, planted_codecs):
    e = Engine(model, digits, batch_size=16)
    spec = make_spec("pgd", "4/255", steps=2)
    cells = [e.evaluate(cell("blur-jpeg", 10, t, spec)) for t in ("oblivious", "whitebox", "adaptive")]
    flagged = {f.cells[0] for f in check(cells) if f.check == "stand-in-fidelity"}
    assert flagged == {"blur-jpeg-q10-r1-whitebox", "blur-jpeg-q10-r1-adaptive"}
    assert cells[0].diagnostics.stand_in is None  # the oblivious attacker never follows the stand-in


# --- each gradient path on its own -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["flip-jpeg", "noisy-jpeg", "sparse-jpeg"])
def test_a_masked_stand_in_path_is_flagged_though_the_identity_path_breaks_every_image(model, digits,
                                                                                      planted_codecs, codec):
    e = Engine(model, digits, batch_size=16)
    r = e.evaluate(cell(codec, 50, "adaptive", make_spec("pgd", "4/255", steps=5)))
    paths = r.diagnostics.large_eps.paths
    assert paths["bpda-identity"] <= 1 < r.diagnostics.large_eps.n * 0.05 < paths["bpda"]
    # the aggregate (per image the worst over paths) is what the identity path leaves: it alone would pass
    assert r.diagnostics.large_eps.correct <= 1
    (finding,) = [f for f in check([r]) if f.check == "large-eps-through-defense"]
    assert "path `bpda` (" in finding.message and "bpda-identity" not in finding.message
    assert r.diagnostics.stand_in.distance == 0  # the forward is the decoded image: only the gradient lies
