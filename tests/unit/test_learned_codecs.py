"""CompressAI-based codecs: the wrapper, its payload format, the zoo, ELIC and the embedded tiny codecs.

Zoo architectures are tested with small random-weight models (no pretrained weights
exist offline); the embedded tiny codecs are tested as shipped.
"""
from __future__ import annotations

import importlib.util
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hac.codecs import get_codec
from pytest_hac.codecs.base import Encoded
from pytest_hac.codecs.compressai_codec import CompressAICodec
from pytest_hac.codecs.compressai_zoo import ZOO_MODELS, zoo_checkpoint
from pytest_hac.codecs.elic import ELIC_CHECKPOINTS, elic_filename, map_elic_reimplementation
from pytest_hac.codecs.payload import pack_payload, read_varint, unpack_payload, write_varint
from pytest_hac.codecs.tiny import load_tiny_codec, tiny_codec_path
from pytest_hac.errors import HacError, WeightsNotFound
from pytest_hac.registry import CODECS

compressai_models = pytest.importorskip("compressai.models")

SMALL_ELIC = {"N": 16, "M": 32, "groups": [4, 4, 8, 8, 8]}
fast = settings(max_examples=4, deadline=None)


def _training_script():
    """``scripts/train_tiny_codecs.py`` as a module (it writes the tiny codecs' files; the package never imports it)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "train_tiny_codecs.py"
    spec = importlib.util.spec_from_file_location("train_tiny_codecs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _seeded(build):
    torch.manual_seed(0)
    return build()


@pytest.fixture(scope="module")
def hyperprior() -> CompressAICodec:
    return CompressAICodec(_seeded(lambda: compressai_models.ScaleHyperprior(N=16, M=24)), name="hyperprior")


@pytest.fixture(scope="module")
def elic() -> CompressAICodec:
    return CompressAICodec(_seeded(lambda: compressai_models.Elic2022Chandelier(**SMALL_ELIC)), name="elic")


@pytest.fixture(scope="module")
def tiny() -> dict[tuple[str, int], CompressAICodec]:
    return {(kind, q): get_codec(kind, q) for kind in ("tiny-mse", "tiny-hific") for q in (1, 2, 3)}


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    """scikit-image's public-domain astronaut at 224 px (a training photo of the tiny codecs, not an eval one)."""
    from skimage import data

    x = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1)[None].float().div(255)
    return F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def image_batches(max_side: int = 80):
    return st.tuples(st.integers(1, 2), st.integers(9, max_side), st.integers(9, max_side), st.integers(0, 2**16))


def random_images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    # Smooth noise (upsampled): closer to photos than white noise, and quick to code.
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(h // 4, 1), max(w // 4, 1), generator=gen)
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


# --------------------------------------------------------------------------- registration


def test_zoo_qualities_match_compressai():
    import compressai.zoo
    from compressai.zoo import image_models
    from compressai.zoo.image import cfgs, model_urls

    assert set(ZOO_MODELS) == {name for name in image_models if not name.endswith("-vbr")}
    for name, model in ZOO_MODELS.items():
        assert image_models[name] is getattr(compressai.zoo, model.function)
        assert model.qualities == tuple(sorted(cfgs[name])), name
        assert set(model.qualities) <= set(model_urls[model.architecture]["mse"]), name
        assert CODECS.info(name).qualities == model.qualities


def test_learned_codecs_are_registered():
    for name in ("elic", "elic-official", "tiny-mse", "tiny-hific", *ZOO_MODELS):
        assert name in CODECS
    assert CODECS.info("elic").qualities == (1, 2, 3, 4, 5, 6)
    assert CODECS.info("tiny-mse").qualities == (1, 2, 3)


# --------------------------------------------------------------------------- the codec contract


@fast
@given(image_batches())
def test_roundtrip_properties_hyperprior(hyperprior, batch):
    check_roundtrip(hyperprior, random_images(*batch))


@fast
@given(image_batches(), st.sampled_from([("tiny-mse", 1), ("tiny-hific", 3)]))
def test_roundtrip_properties_tiny(tiny, batch, which):
    check_roundtrip(tiny[which], random_images(*batch))


def check_roundtrip(codec: CompressAICodec, x: torch.Tensor) -> None:
    x_hat, bpp = codec.roundtrip(x)
    assert x_hat.shape == x.shape and x_hat.dtype == torch.float32
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert torch.equal(x_hat, x_hat.mul(255).round().div(255))  # 8-bit, as a decoded file
    assert bpp.shape == (x.shape[0],) and torch.isfinite(bpp).all() and (bpp > 0).all()
    encoded = codec.compress(x)
    assert len(encoded.payloads) == x.shape[0]
    assert torch.equal(codec.decompress(encoded), codec.decompress(encoded))  # same bytes, same image


def test_decoding_needs_only_the_bytes(tiny, photos):
    # A fresh codec that never encoded anything decodes the payloads to the very same image.
    codec = tiny[("tiny-hific", 2)]
    encoded = codec.compress(photos)
    fresh = get_codec("tiny-hific", 2)
    assert torch.equal(fresh.decompress(encoded), codec.decompress(encoded))


@pytest.mark.parametrize("kind", ["tiny-mse", "tiny-hific"])
def test_fewer_bytes_at_lower_quality(tiny, astronaut, kind):
    sizes = [tiny[(kind, q)].compress(astronaut).nbytes.item() for q in (1, 2, 3)]
    assert sizes[0] < sizes[1] < sizes[2], sizes


@pytest.mark.parametrize("kind", ["tiny-mse", "tiny-hific"])
def test_tiny_codecs_reconstruct_photos(tiny, photos, kind):
    # A trained codec, not noise: the highest quality keeps a natural photo recognisable.
    x_hat, bpp = tiny[(kind, 3)].roundtrip(photos)
    psnr = -10 * torch.log10((x_hat - photos).pow(2).mean())
    assert psnr > 22 and bpp.mean() < 2.0


def test_stride_padding_crops_back(hyperprior, elic):
    x = random_images(1, 37, 50, seed=1)
    factorized = CompressAICodec(_seeded(lambda: compressai_models.FactorizedPrior(N=8, M=12)))
    assert (hyperprior.stride, elic.stride, factorized.stride) == (64, 64, 16)
    for codec in (hyperprior, elic, factorized):
        assert codec.roundtrip(x)[0].shape == x.shape
        assert codec.approximate(x).shape == x.shape


# --------------------------------------------------------------------------- differentiable twin


def forward_gap(codec: CompressAICodec, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (codec.approximate(x) - codec.decompress(codec.compress(x))).abs().mean().item()


def test_forward_matches_decoded_random_models(hyperprior, elic):
    x = random_images(1, 64, 64, seed=2)
    context = CompressAICodec(_seeded(lambda: compressai_models.JointAutoregressiveHierarchicalPriors(N=16, M=24)))
    for codec in (hyperprior, elic, context):
        assert forward_gap(codec, x) <= codec.forward_vs_decode_tolerance, type(codec.net).__name__
    assert hyperprior.forward_vs_decode_tolerance < context.forward_vs_decode_tolerance


#: Small random-weight sizes of each zoo architecture (the pretrained ones are far larger).
ZOO_SMALL = {"bmshj2018-factorized": {"N": 8, "M": 12}, "bmshj2018-hyperprior": {"N": 16, "M": 24},
             "mbt2018-mean": {"N": 16, "M": 24}, "mbt2018": {"N": 16, "M": 24}, "cheng2020-anchor": {"N": 16},
             "cheng2020-attn": {"N": 16}}


@pytest.mark.parametrize("name", sorted(ZOO_MODELS))
def test_every_zoo_architecture_decodes_what_its_forward_pass_shows(name):
    from compressai.zoo.image import model_architectures

    arch = ZOO_MODELS[name].architecture
    codec = CompressAICodec(_seeded(lambda: model_architectures[arch](**ZOO_SMALL[arch])), name=name)
    x = random_images(2, 40, 72, seed=4)  # not a multiple of the stride: padded and cropped back
    x_hat, bpp = codec.roundtrip(x)
    assert x_hat.shape == x.shape and x_hat.dtype == torch.float32 and 0 <= x_hat.min() <= x_hat.max() <= 1
    assert (bpp > 0).all()
    assert forward_gap(codec, x) <= codec.forward_vs_decode_tolerance


@pytest.mark.parametrize("kind", ["tiny-mse", "tiny-hific"])
def test_forward_matches_decoded_tiny(tiny, photos, kind):
    for q in (1, 3):
        codec = tiny[(kind, q)]
        assert forward_gap(codec, photos) <= codec.forward_vs_decode_tolerance


def test_gradient_is_not_masked(hyperprior, elic):
    for codec in (hyperprior, elic):
        x = random_images(1, 64, 64, seed=3).requires_grad_(True)
        codec.approximate(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, type(codec.net).__name__


def test_plain_compressai_forward_would_mask_gradients():
    # The pitfall the straight-through patch fixes: eval-mode hard rounding gives zero gradient.
    net = _seeded(lambda: compressai_models.ScaleHyperprior(N=16, M=24)).eval()
    x = random_images(1, 64, 64, seed=3).requires_grad_(True)
    net(x)["x_hat"].sum().backward()
    assert x.grad.abs().sum() == 0


def test_straight_through_keeps_forward_values():
    net = _seeded(lambda: compressai_models.MeanScaleHyperprior(N=16, M=24)).eval()
    x = random_images(1, 64, 64, seed=4)
    with torch.no_grad():
        plain = net(x)["x_hat"]
        patched = CompressAICodec(net).net(x)["x_hat"]
    assert torch.equal(plain, patched)


# --------------------------------------------------------------------------- bitstreams and state dicts


def test_payload_format():
    payload = pack_payload(37, 50, [1, 2, 300], [b"abc", b"", b"\x00" * 200])
    assert unpack_payload(payload) == (37, 50, [1, 2, 300], [b"abc", b"", b"\x00" * 200])
    assert len(payload) == 5 + 1 + 4 + 1 + 4 + 203  # header bytes count towards bpp
    with pytest.raises(HacError, match="corrupt"):
        unpack_payload(payload[:-1])


#: Format version 1 as written since the first release: pack_payload(37, 50, [1, 2, 300], [b"abc", b"", 3 zeros]).
PINNED_PAYLOAD = bytes.fromhex("0125003200030102ac0203030003616263000000")
#: tiny-mse q1's payload of a flat 16x16 image (red 0.25, green and blue 0.5), written by the first release.
PINNED_TINY_MSE_Q1 = bytes.fromhex(
    "011000100002010102380c832ab03501000000c3982cd3160055d50a004c680b00a48e000031a3677f415892bbf12ef9ffeabf"
    "41bf03a2fda7c429ac6e087100000000cae9f3d1cd0100005ba167b3")


def test_payloads_of_format_version_1_still_decode(tiny):
    assert pack_payload(37, 50, [1, 2, 300], [b"abc", b"", b"\x00" * 3]) == PINNED_PAYLOAD
    assert unpack_payload(PINNED_PAYLOAD) == (37, 50, [1, 2, 300], [b"abc", b"", b"\x00" * 3])
    decoded = tiny[("tiny-mse", 1)].decompress(Encoded([PINNED_TINY_MSE_Q1], 16, 16))
    original = torch.tensor([0.25, 0.5, 0.5]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    assert decoded.shape == original.shape
    assert (decoded - original).abs().mean() < 0.08  # the lowest rate of a tiny codec on a tiny image
    red, green, blue = decoded.mean(dim=(0, 2, 3)).tolist()
    assert red < 0.4 and green > 0.4 and blue > 0.4


def test_payload_header_errors():
    with pytest.raises(HacError, match="format version 2; this build reads version 1"):
        unpack_payload(b"\x02" + PINNED_PAYLOAD[1:])
    with pytest.raises(HacError, match="shorter than its header"):
        unpack_payload(PINNED_PAYLOAD[:4])
    with pytest.raises(HacError, match="truncated"):
        unpack_payload(PINNED_PAYLOAD[:6])
    with pytest.raises(HacError, match="does not fit the payload header"):
        pack_payload(65536, 1, [], [])


@given(st.integers(0, 2**40))
def test_varints_roundtrip(n):
    data = write_varint(n)
    assert read_varint(data + b"tail", 0) == (n, len(data))
    assert len(data) == max(1, -(-n.bit_length() // 7))


def test_bpp_counts_every_byte(hyperprior):
    x = random_images(2, 64, 64, seed=5)
    encoded = hyperprior.compress(x)
    _, bpp = hyperprior.roundtrip(x)
    assert torch.equal(bpp, torch.tensor([len(p) * 8 / (64 * 64) for p in encoded.payloads], dtype=torch.float64))


def test_state_dict_roundtrip_gives_identical_bitstreams(hyperprior, tmp_path):
    x = random_images(2, 64, 64, seed=6)
    torch.save(hyperprior.net.state_dict(), tmp_path / "net.pt")
    fresh = compressai_models.ScaleHyperprior(N=16, M=24)
    fresh.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    assert CompressAICodec(fresh).compress(x).payloads == hyperprior.compress(x).payloads


def test_tiny_file_roundtrip_gives_identical_bitstreams(tiny, photos, tmp_path):
    codec = tiny[("tiny-mse", 2)]
    torch.save(_training_script().tiny_state_dict(codec.net), tmp_path / "tiny.pt")
    again = load_tiny_codec("tiny-mse", 2, tmp_path / "tiny.pt")
    assert again.compress(photos).payloads == codec.compress(photos).payloads


def test_embedded_weights_are_small():
    total = sum(tiny_codec_path(kind, q).stat().st_size for kind in ("tiny-mse", "tiny-hific") for q in (1, 2, 3))
    assert total < 10 * 2**20


# --------------------------------------------------------------------------- weights: ELIC


def test_missing_elic_checkpoint_names_file_and_option(tmp_path):
    with pytest.raises(WeightsNotFound) as err:
        get_codec("elic", 3, weights_dir=tmp_path)
    assert "ELIC_0016_ft_3980_Plateau.pth.tar" in str(err.value)
    assert "--hac-weights-dir" in str(err.value) and str(tmp_path) in str(err.value)
    assert [elic_filename(q)[5:9] for q in ELIC_CHECKPOINTS] == ["0004", "0008", "0016", "0032", "0150", "0450"]


def to_reimplementation(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CompressAI Elic2022Chandelier state dict in the layout of the re-implementation's Network.py."""
    out = {}
    for key, value in state.items():
        if key.startswith(("g_a.", "g_s.")):
            out[key] = value
        elif key.startswith("latent_codec.hyper."):
            key = key.removeprefix("latent_codec.hyper.")
            for new, old in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
                key = key.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{old}")  # CompressAI 1.1 names
            out[key] = value
        elif key.startswith("latent_codec.y.channel_context.y"):
            k, _, rest = key.removeprefix("latent_codec.y.channel_context.y").partition(".")
            out[f"cc_transforms.{int(k) - 1}.{rest}"] = value
        elif ".y0.y.gaussian_conditional." in key:
            out["gaussian_conditional." + key.split(".gaussian_conditional.")[1]] = value
        elif ".context_prediction." in key or ".entropy_parameters." in key:
            k, _, rest = key.removeprefix("latent_codec.y.latent_codec.y").partition(".")
            name, _, tail = rest.partition(".")
            upstream = "ParamAggregation" if name == "entropy_parameters" else name
            out[f"{upstream}.{k}.{tail}"] = value
    return out


def test_elic_reimplementation_mapping_loads(elic, tmp_path):
    x = random_images(1, 64, 64, seed=7)
    elic.compress(x)  # fills the entropy tables, as a checkpoint after updata.py has them
    state = to_reimplementation(elic.net.state_dict())
    assert "cc_transforms.0.0.weight" in state and "ParamAggregation.4.4.bias" in state
    assert "entropy_bottleneck._matrix0" in state and "gaussian_conditional.scale_table" in state
    # DataParallel prefix and a training checkpoint's wrapper, as published files have.
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / elic_filename(2))
    loaded = get_codec("elic", 2, weights_dir=tmp_path)
    assert isinstance(loaded.net, compressai_models.Elic2022Chandelier)
    own = elic.net.state_dict()
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, own[key]), key
    assert loaded.compress(x).payloads == elic.compress(x).payloads


def test_elic_mapping_names():
    t = torch.zeros(1)
    mapped = map_elic_reimplementation({
        "cc_transforms.0.0.weight": t, "context_prediction.2.weight": t, "ParamAggregation.1.0.bias": t,
        "h_s.4.weight": t, "gaussian_conditional._offset": t,
    })
    assert set(mapped) == {
        "latent_codec.y.channel_context.y1.0.weight",
        "latent_codec.y.latent_codec.y2.context_prediction.weight",
        "latent_codec.y.latent_codec.y1.entropy_parameters.0.bias",
        "latent_codec.hyper.h_s.4.weight",
        "latent_codec.y.latent_codec.y2.y.gaussian_conditional._offset",  # copied into every group
    }


def test_elic_official_rejects_reimplementation_checkpoint(elic, tmp_path):
    torch.save(to_reimplementation(elic.net.state_dict()), tmp_path / elic_filename(1))
    with pytest.raises(WeightsNotFound, match="'elic'"):
        get_codec("elic-official", 1, weights_dir=tmp_path)


def test_elic_official_loads_compressai_state_dict(tmp_path):
    net = _seeded(lambda: compressai_models.Elic2022Official(**SMALL_ELIC))
    torch.save(net.state_dict(), tmp_path / elic_filename(6))
    codec = get_codec("elic-official", 6, weights_dir=tmp_path)
    assert isinstance(codec.net, compressai_models.Elic2022Official) and codec.quality == 6


# --------------------------------------------------------------------------- weights: the zoo


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_zoo_offline_missing_names_file_and_folder(torch_home):
    with pytest.raises(WeightsNotFound) as err:
        get_codec("bmshj2018-hyperprior", 1, offline=True)
    message = str(err.value)
    filename, url = zoo_checkpoint("bmshj2018-hyperprior", 1)
    assert filename == "bmshj2018-hyperprior-1-7eb97409.pth.tar"
    assert filename in message and url in message and str(torch_home) in message


def test_zoo_failed_download_is_a_clear_error(torch_home, monkeypatch):
    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsNotFound, match="could not download") as err:
        get_codec("mbt2018-mean", 2)
    assert zoo_checkpoint("mbt2018-mean", 2)[0] in str(err.value)
    assert not torch_home.joinpath(zoo_checkpoint("mbt2018-mean", 2)[0]).exists()


def test_zoo_html_checkpoint_is_a_clear_error(torch_home):
    torch_home.mkdir(parents=True)
    filename, _ = zoo_checkpoint("cheng2020-anchor", 1)
    (torch_home / filename).write_text("<!DOCTYPE html><html><body>Access Denied</body></html>")
    with pytest.raises(WeightsNotFound, match="HTML"):
        get_codec("cheng2020-anchor", 1)


def test_zoo_loads_from_cache_and_weights_dir(torch_home, tmp_path, monkeypatch):
    # CompressAI's from_state_dict reads N and M from the weights, so a small model stands in.
    net = _seeded(lambda: compressai_models.MeanScaleHyperprior(N=16, M=24))
    filename, _ = zoo_checkpoint("mbt2018-mean", 3)
    torch_home.mkdir(parents=True)
    torch.save(net.state_dict(), torch_home / filename)
    codec = get_codec("mbt2018-mean", 3, offline=True)
    assert isinstance(codec.net, compressai_models.MeanScaleHyperprior) and codec.label == "mbt2018-mean-q3"
    (torch_home / filename).unlink()
    own = tmp_path / "mine"
    own.mkdir()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, own / filename)
    codec = get_codec("mbt2018-mean", 3, weights_dir=own, offline=True)
    assert codec.roundtrip(random_images(1, 40, 40, 0))[0].shape[-1] == 40
