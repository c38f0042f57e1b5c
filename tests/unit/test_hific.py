"""HiFiC: the port's key layout, checkpoint loading, real bitstreams and the differentiable path.

Checkpoints here are small random-weight models saved in the port's format
(``{"model_state_dict": ..., "args": {...}}``); the real ones are 2 GB each.
"""
import argparse
import struct

import pytest
import torch

from pytest_hac.codecs import get_codec
from pytest_hac.codecs.hific import HiFiC
from pytest_hac.codecs.hific.model import HiFiCModel, latent_shape
from pytest_hac.codecs.payload import pack_hific_payload, unpack_hific_payload
from pytest_hac.errors import HacError, WeightsNotFound

SMALL = dict(latent_channels=8, widths=(4, 4, 8, 8, 8), n_residual_blocks=2, hyperlatent_filters=8)
LOW_ARGS = {"normalize_input_image": True, "likelihood_type": "gaussian", "n_residual_blocks": 2}
MED_ARGS = {"normalize_input_image": False, "likelihood_type": "logistic", "n_residual_blocks": 2}
# Decoded bitstream vs differentiable forward: the same latents go through the same generator,
# so only float noise of batched convolutions may separate them.
DECODE_VS_FORWARD_ATOL = 1e-5


class TrainingThing:
    """A class no allowlist knows, as a training script might leave in ``args``."""

    def __init__(self):
        self.value = 3


def small_model(seed: int = 0) -> HiFiCModel:
    torch.manual_seed(seed)
    model = HiFiCModel(**SMALL)
    with torch.no_grad():  # random latents would mostly round to the mean; spread them over several integers
        model.Encoder.conv_block_out[1].weight.mul_(20)
    return model


def save_port_checkpoint(path, model=None, args=LOW_ARGS, **extra):
    model = model if model is not None else small_model()
    torch.save({"model_state_dict": model.state_dict(), "args": args, "epoch": 1, **extra}, path)
    return model


@pytest.fixture(scope="module", params=[1, 2], ids=["low-gaussian", "med-logistic"])
def codec(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    name, args = {1: ("hific_low.pt", LOW_ARGS), 2: ("hific_med.pt", MED_ARGS)}[request.param]
    save_port_checkpoint(folder / name, args=args)
    return get_codec("hific", request.param, weights_dir=folder)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))


def test_default_size_has_the_ports_key_layout():
    """Key names and shapes from the port's src/network/{encoder,generator,hyper}.py and src/hyperprior.py."""
    with torch.device("meta"):
        state = HiFiCModel().state_dict()
    expected = {
        "Encoder.conv_block1.1.weight": (60, 3, 7, 7),
        "Encoder.conv_block1.2.gamma": (1, 60, 1, 1),
        "Encoder.conv_block5.1.weight": (960, 480, 3, 3),
        "Encoder.conv_block_out.1.weight": (220, 960, 3, 3),
        "Generator.conv_block_init.0.gamma": (1, 220, 1, 1),
        "Generator.conv_block_init.2.weight": (960, 220, 3, 3),
        "Generator.resblock_0.norm1.beta": (1, 960, 1, 1),
        "Generator.resblock_8.conv2.weight": (960, 960, 3, 3),
        "Generator.upconv_block1.0.weight": (960, 480, 3, 3),
        "Generator.upconv_block4.1.gamma": (1, 60, 1, 1),
        "Generator.conv_block_out.1.weight": (3, 60, 7, 7),
        "Hyperprior.analysis_net.conv1.weight": (320, 220, 3, 3),
        "Hyperprior.analysis_net.conv3.weight": (320, 320, 5, 5),
        "Hyperprior.synthesis_mu.conv3.weight": (320, 220, 3, 3),
        "Hyperprior.synthesis_std.conv1.weight": (320, 320, 5, 5),
        "Hyperprior.hyperlatent_likelihood.H_0": (320, 3, 1),
        "Hyperprior.hyperlatent_likelihood.a_3": (320, 1, 1),
        "Hyperprior.hyperlatent_likelihood.b_3": (320, 1, 1),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert not any(k.startswith("Generator.resblock_9.") for k in state)  # 9 blocks: 0..8
    # The port's README: "total size of the model ... around 737 MB", which also counts its discriminator.
    megabytes = 4 * sum(v.numel() for v in state.values()) / 1e6
    assert 700 < megabytes < 737


def test_roundtrip_shape_dtype_range(codec, images):
    y, bpp = codec.roundtrip(images)
    assert y.shape == images.shape and y.dtype == torch.float32
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert torch.equal(y, (y * 255).round() / 255)
    assert bpp.shape == (2,) and bool((bpp > 0).all())


def test_bpp_is_measured_from_payload_bytes(codec, images):
    encoded = codec.compress(images)
    h, w = images.shape[-2:]
    assert encoded.bpp.tolist() == [8 * len(p) / (h * w) for p in encoded.payloads]
    version, lh, lw, nz = struct.unpack_from("<BHHI", encoded.payloads[0])
    assert (version, (lh, lw)) == (1, latent_shape(h, w))
    assert 0 < nz < len(encoded.payloads[0])
    assert torch.equal(codec.roundtrip(images)[1], encoded.bpp)


#: Format version 1 as written since the first release: latent 8x12, hyper-latent string b"zz", latent string b"yyy".
PINNED_PAYLOAD = bytes.fromhex("0108000c00020000007a7a797979")


def test_payloads_of_format_version_1_still_decode():
    assert pack_hific_payload((8, 12), b"zz", b"yyy") == PINNED_PAYLOAD
    assert unpack_hific_payload(PINNED_PAYLOAD) == ((8, 12), b"zz", b"yyy")
    with pytest.raises(HacError, match="HiFiC payload has format version 2; this build reads version 1"):
        unpack_hific_payload(b"\x02" + PINNED_PAYLOAD[1:])
    with pytest.raises(HacError, match="HiFiC payload of 5 bytes is shorter than its header"):
        unpack_hific_payload(PINNED_PAYLOAD[:5])


@pytest.mark.parametrize("side, latent", [(1, 8), (32, 8), (129, 12), (224, 16), (513, 36)])
def test_latent_size_follows_the_padding(side, latent):
    # Image padded to a multiple of 16 (at least 32), latent to a multiple of 4 (at least 8).
    assert latent_shape(side, side) == (latent, latent)
    with torch.device("meta"):
        model = HiFiCModel(**SMALL)
    assert model.analysis(torch.zeros(1, 3, side, side, device="meta")).shape[-2:] == (latent, latent)


def test_decoding_is_deterministic(codec, images):
    encoded = codec.compress(images)
    assert encoded.payloads == codec.compress(images).payloads
    assert torch.equal(codec.decompress(encoded), codec.decompress(encoded))


def test_decoded_bitstream_matches_the_differentiable_forward(codec, images):
    decoded = codec.decompress(codec.compress(images))
    assert torch.allclose(decoded, codec.approximate(images), atol=DECODE_VS_FORWARD_ATOL, rtol=0)


def test_approximate_has_input_gradients(codec, images):
    x = images.clone().requires_grad_(True)
    codec.approximate(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("size", [(40, 56), (17, 130), (1, 1)])
def test_any_size_comes_back_at_its_own_size(codec, size):
    x = torch.rand(1, 3, *size)
    assert codec.roundtrip(x)[0].shape == x.shape
    assert codec.approximate(x).shape == x.shape


def test_settings_come_from_the_checkpoint_args(tmp_path):
    save_port_checkpoint(tmp_path / "hific_low.pt", args={"normalize_input_image": False})
    codec = get_codec("hific", 1, weights_dir=tmp_path)
    assert (codec.model.normalize_input_image, codec.settings_from) == (False, "checkpoint args")


@pytest.mark.parametrize("quality, normalized, likelihood", [(1, True, "gaussian"), (2, False, "logistic"),
                                                             (3, True, "gaussian")])
def test_variant_defaults_without_args(tmp_path, quality, normalized, likelihood):
    name = {1: "hific_low.pt", 2: "hific_med.pt", 3: "hific_hi.pt"}[quality]
    torch.save({"model_state_dict": small_model().state_dict()}, tmp_path / name)
    model = get_codec("hific", quality, weights_dir=tmp_path).model
    assert (model.normalize_input_image, model.likelihood) == (normalized, likelihood)


def test_namespace_args_and_unknown_classes_load_without_pickle(tmp_path):
    model = save_port_checkpoint(tmp_path / "a.pt", args=argparse.Namespace(**LOW_ARGS))
    assert HiFiC.from_checkpoint(tmp_path / "a.pt", 1).model.normalize_input_image is True
    save_port_checkpoint(tmp_path / "b.pt", model, args={**MED_ARGS, "extra": TrainingThing()}, junk=TrainingThing())
    loaded = HiFiC.from_checkpoint(tmp_path / "b.pt", 2).model
    assert loaded.likelihood == "logistic"
    assert torch.equal(loaded.Generator.conv_block_out[1].weight, model.Generator.conv_block_out[1].weight)


def test_missing_checkpoint_names_file_option_and_source(tmp_path):
    with pytest.raises(WeightsNotFound) as info:
        get_codec("hific", 2, weights_dir=tmp_path)
    message = str(info.value)
    for needle in ("hific_med.pt", "--hac-weights-dir", "Justin-Tan/high-fidelity-generative-compression",
                   "1QNoX0AGKTBkthMJGPfQI0dT0_tnysYUb"):
        assert needle in message


def test_wrong_keys_are_a_clear_error(tmp_path):
    torch.save({"model_state_dict": {"conv.weight": torch.zeros(1)}, "args": {}}, tmp_path / "hific_low.pt")
    with pytest.raises(WeightsNotFound, match="not a HiFiC checkpoint.*Encoder.conv_block1.1.weight"):
        get_codec("hific", 1, weights_dir=tmp_path)
    state = small_model().state_dict()
    del state["Hyperprior.synthesis_std.conv2.bias"]
    torch.save({"model_state_dict": state, "args": {}}, tmp_path / "hific_low.pt")
    with pytest.raises(WeightsNotFound, match="1 keys missing.*synthesis_std.conv2.bias"):
        get_codec("hific", 1, weights_dir=tmp_path)


def test_failed_download_is_recognised(tmp_path):
    (tmp_path / "hific_hi.pt").write_text("<!DOCTYPE html><html>Google Drive - virus scan warning</html>")
    with pytest.raises(WeightsNotFound, match="failed download"):
        get_codec("hific", 3, weights_dir=tmp_path)


def test_paper_input_quirk_feeds_unnormalized_images(tmp_path, images):
    save_port_checkpoint(tmp_path / "hific_low.pt")
    exact = HiFiC.from_checkpoint(tmp_path / "hific_low.pt", 1)
    quirky = HiFiC.from_checkpoint(tmp_path / "hific_low.pt", 1, paper_input_quirk=True)
    with torch.no_grad():
        assert torch.equal(quirky.approximate(images), exact.model(images, normalize=False))
        assert torch.equal(exact.approximate(images), exact.model(images, normalize=True))
        assert not torch.allclose(quirky.approximate(images), exact.approximate(images))
