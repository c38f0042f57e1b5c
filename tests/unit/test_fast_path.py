"""The attack-time fast path of learned codecs: bit for bit the decoded bitstream, or not used at all.

Every codec that declares ``fast_decode`` is compared with ``roundtrip`` on random and real images over
two rounds (the second codes the first's output, as sequential compression does); zoo
architectures, ELIC and HiFiC with small random weights, the embedded tiny codecs as shipped.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from pytest_hac.codecs import get_codec
from pytest_hac.codecs.compressai_codec import CompressAICodec
from pytest_hac.codecs.compressai_zoo import ZOO_MODELS
from pytest_hac.codecs.fastpath import verify_fast_path
from pytest_hac.core.engine.targets import Defended
from pytest_hac.data.builtin import digits
from pytest_hac.models import get_model
from pytest_hac.registry import register_codec

compressai_models = pytest.importorskip("compressai.models")

ROUNDS = 2
#: Autoregressive context models drive rANS symbol by symbol: they declare no fast path.
SERIAL = {"mbt2018", "cheng2020-anchor", "cheng2020-attn"}


def _zoo_net(name: str):
    from compressai.zoo.image import model_architectures

    torch.manual_seed(0)
    if name == "bmshj2018-factorized-relu":
        return compressai_models.FactorizedPriorReLU(N=16, M=24)
    arch = model_architectures[ZOO_MODELS[name].architecture]
    return arch(N=16) if name.startswith("cheng2020") else arch(N=16, M=24)


def _elic(official: bool):
    torch.manual_seed(0)
    cls = compressai_models.Elic2022Official if official else compressai_models.Elic2022Chandelier
    return cls(N=16, M=32, groups=[4, 4, 8, 8, 8])


def _hific(likelihood: str):
    from pytest_hac.codecs.hific import HiFiC
    from pytest_hac.codecs.hific.model import HiFiCModel

    torch.manual_seed(0)
    model = HiFiCModel(latent_channels=8, widths=(4, 4, 8, 8, 8), n_residual_blocks=2, hyperlatent_filters=8)
    with torch.no_grad():  # spread random latents over several integers (else they all round to the mean)
        model.Encoder.conv_block_out[1].weight.mul_(20)
    model.likelihood = likelihood
    return HiFiC(model, 1)


BUILDERS = {
    **{f"{kind}-q{q}": (lambda kind=kind, q=q: get_codec(kind, q))
       for kind in ("tiny-mse", "tiny-hific") for q in (1, 2, 3)},
    **{name: (lambda name=name: CompressAICodec(_zoo_net(name), name=name))
       for name in ZOO_MODELS if name not in SERIAL},
    "elic": lambda: CompressAICodec(_elic(False), name="elic"),
    "elic-official": lambda: CompressAICodec(_elic(True), name="elic-official"),
    "hific-gaussian": lambda: _hific("gaussian"),
    "hific-logistic": lambda: _hific("logistic"),
}


@pytest.fixture(scope="module")
def images(photos) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    smooth = F.interpolate(torch.rand(2, 3, 9, 13, generator=gen), size=(37, 53), mode="bilinear")
    return {
        "random-smooth": smooth.clamp(0, 1),
        "random-noise": torch.rand(2, 3, 40, 40, generator=gen),
        "photos": F.interpolate(photos, size=(72, 72), mode="bilinear", antialias=True).clamp(0, 1),
        "digits": digits(samples=4).pixels(),
    }


def _built(name: str):
    codec = BUILDERS[name]()
    if not codec.fast_path:  # built outside get_codec: verify as get_codec does
        verify_fast_path(codec)
    return codec


#: Random-weight ELIC and HiFiC code slowly (wide latents): two kinds of image.
SLOW = {"elic", "elic-official", "hific-gaussian", "hific-logistic"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fast_path_is_the_decoded_bitstream_bit_for_bit(name, images):
    codec = _built(name)
    assert codec.fast_path, f"{name} declares a fast path but it was refused"
    kinds = ("digits", "random-smooth") if name in SLOW else tuple(images)
    for kind in kinds:
        x = images[kind]
        for r in range(ROUNDS):
            real = codec.roundtrip(x)[0]
            fast = codec.fast_decode(x)
            assert torch.equal(fast, real), f"{name} {kind} round {r + 1}: max diff {(fast - real).abs().max()}"
            assert torch.equal(codec.attack_decode(x), real)
            x = real


@pytest.mark.parametrize("name", sorted(SERIAL))
def test_context_models_keep_the_real_coder(name, images):
    codec = CompressAICodec(_zoo_net(name), name=name)
    assert codec.fast_decode(images["digits"]) is None
    assert not verify_fast_path(codec) and not codec.fast_path
    x = images["digits"][:1]
    assert torch.equal(codec.attack_decode(x), codec.roundtrip(x)[0])


def test_jpeg_keeps_libjpeg():
    codec = get_codec("jpeg", 50)
    assert not codec.fast_path and codec.fast_decode(torch.rand(1, 3, 8, 8)) is None


class OffByOne(CompressAICodec):
    """A codec whose declared fast path is wrong by one 8-bit level in one pixel."""

    def fast_decode(self, x):
        out = super().fast_decode(x).clone()
        out[..., 0, 0] = (out[..., 0, 0] + 1 / 255).clamp(0, 1) if out[0, 0, 0, 0] < 1 else out[..., 0, 0] - 1 / 255
        return out


def test_a_wrong_fast_path_is_refused_and_attacks_use_the_real_coder(registries, images):
    from pytest_hac.codecs.tiny import load_tiny_codec_net

    register_codec("off-by-one", lambda q, **_: OffByOne(load_tiny_codec_net("tiny-mse", 1), name="off-by-one"))
    with pytest.warns(UserWarning, match="off-by-one: its fast decode differs .* use the real entropy coder"):
        codec = get_codec("off-by-one")
    assert not codec.fast_path
    x = images["digits"]
    real = codec.roundtrip(x)[0]
    assert torch.equal(codec.attack_decode(x), real)
    with torch.no_grad():
        assert torch.equal(codec.bpda(x), real)


@pytest.mark.parametrize("mode", ["bpda", "real"])
def test_defended_sees_the_same_logits_and_gradients_through_either_path(mode, images):
    model = get_model("tiny-cnn")
    x = images["digits"]
    out = {}
    for fast in (True, False):
        codec = get_codec("tiny-hific", 2)
        if not fast:
            codec.fast_path = False
        xg = x.clone().requires_grad_(mode == "bpda")
        logits = Defended(model, codec, 2, mode)(xg)
        grad = torch.autograd.grad(logits.sum(), xg)[0] if mode == "bpda" else None
        out[fast] = (logits.detach(), grad)
    assert torch.equal(out[True][0], out[False][0])
    if mode == "bpda":
        assert torch.equal(out[True][1], out[False][1])


def test_verification_leaves_no_coder_swapped():
    codec = get_codec("tiny-mse", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.fast_decode(torch.rand(1, 3, 16, 16))
    assert all("SymbolsOnly" not in type(m).__name__ for m in codec.net.modules())
    assert len(codec.compress(torch.rand(1, 3, 16, 16)).payloads[0]) > 0


def test_cells_through_the_fast_path_equal_the_real_coder_cells():
    """Same accuracies, same per-image outcomes, same diagnostics and the same attack counts."""
    from pytest_hac.attacks import make_spec
    from pytest_hac.core.cells.cases import Case
    from pytest_hac.core.engine.engine import Engine

    model, data = get_model("tiny-cnn"), digits(samples=4)
    # every attack step through the real coder entropy-codes: two steps and twenty queries say it
    cases = [Case("tiny-hific", 2, 2, "adaptive", make_spec("pgd", "8/255", steps=2), id="adaptive"),
             Case("tiny-hific", 2, 1, "query", make_spec("square", "8/255", queries=20), id="query")]
    runs = {}
    for fast in (True, False):
        engine = Engine(model, data, batch_size=4)
        codec = engine.codec("tiny-hific", 2)
        assert codec.fast_path
        if not fast:
            codec.fast_path = False
        results = [engine.evaluate(c) for c in cases]
        runs[fast] = ([(r.correct, r.bpp, r.psnr, r.diagnostics) for r in results], engine.counters.to_dict())
    assert runs[True] == runs[False]
