"""JPEG through real libjpeg: properties of the round trip and of its differentiable stand-in."""
import io

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pytest_hac.codecs import get_codec


@settings(max_examples=25, deadline=None)
@given(quality=st.integers(1, 100), h=st.integers(1, 40), w=st.integers(1, 40), n=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_roundtrip_shape_dtype_range(quality, h, w, n, seed):
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    y, bpp = get_codec("jpeg", quality).roundtrip(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert torch.equal(y, (y * 255).round() / 255)  # an 8-bit image, as a decoded file is
    assert bpp.shape == (n,) and bool((bpp > 0).all())


def test_payload_is_a_real_jpeg_file(photos):
    codec = get_codec("jpeg", 40)
    encoded = codec.compress(photos)
    img = Image.open(io.BytesIO(encoded.payloads[0]))
    assert img.format == "JPEG" and img.size == (photos.shape[-1], photos.shape[-2])
    expected = 8 * len(encoded.payloads[0]) / (photos.shape[-1] * photos.shape[-2])
    assert float(codec.roundtrip(photos)[1][0]) == expected


def test_decode_is_deterministic(photos):
    codec = get_codec("jpeg", 30)
    encoded = codec.compress(photos)
    assert torch.equal(codec.decompress(encoded), codec.decompress(encoded))


@settings(max_examples=25, deadline=None)
@given(quality=st.integers(1, 100), h=st.integers(1, 48), w=st.integers(1, 48), seed=st.integers(0, 2**16))
def test_decoding_gives_what_a_file_reader_gives(quality, h, w, seed):
    """The decoder runs on the payload without Pillow's header parsing: the pixels any reader of the file gets."""
    codec = get_codec("jpeg", quality)
    encoded = codec.compress(torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed)))
    opened = [torch.from_numpy(np.array(Image.open(io.BytesIO(p)).convert("RGB"))) for p in encoded.payloads]
    assert torch.equal(codec.decompress(encoded), torch.stack(opened).permute(0, 3, 1, 2).float().div(255))


def test_the_cuda_coder_runs_on_cpu_quietly_and_agrees_with_pillow(photos):
    """The nvJPEG functions (``torchvision.io``, which warns on every call since 0.29) exercised on CPU: no warning
    reaches the user, and the files decode to what Pillow's decoder gives, within a level of 255."""
    import warnings

    from pytest_hac.codecs.jpeg import nvjpeg_decode, nvjpeg_encode

    codec = get_codec("jpeg", 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        payloads = nvjpeg_encode(photos.mul(255).round().to(torch.uint8), 50)
        decoded = nvjpeg_decode(payloads, "cpu")
    assert all(p[:2] == b"\xff\xd8" for p in payloads) and decoded.shape == photos.shape
    pillow = codec.decompress(codec.compress(photos))
    assert float((decoded - pillow).abs().max()) <= 1 / 255 + 1e-6


def test_fewer_bytes_at_lower_quality_on_natural_photos(photos):
    sizes = [float(get_codec("jpeg", q).roundtrip(photos)[1].mean()) for q in (10, 25, 50, 75, 95)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 3


def test_higher_quality_is_closer_to_the_original(photos):
    err = [float((get_codec("jpeg", q).roundtrip(photos)[0] - photos).pow(2).mean()) for q in (10, 50, 95)]
    assert err[0] > err[1] > err[2]


def test_approximation_follows_real_jpeg_and_has_gradients(photos):
    codec = get_codec("jpeg", 50)
    x = photos.clone().requires_grad_()
    approx = codec.approximate(x)
    real, _ = codec.roundtrip(photos)
    assert float((approx.detach() - real).abs().mean()) < 0.02  # kornia's JPEG tracks libjpeg closely
    approx.sum().backward()
    assert float(x.grad.abs().mean()) > 0.1  # gradients flow: no masking


def test_approximation_handles_sizes_not_multiple_of_16():
    x = torch.rand(2, 3, 37, 50, requires_grad=True)
    y = get_codec("jpeg", 50).approximate(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert x.grad is not None


def test_identity_is_untouched():
    x = torch.rand(2, 3, 8, 8)
    y, bpp = get_codec("identity").roundtrip(x)
    assert y is x and bool(torch.isnan(bpp).all())
