"""WebP, AVIF, JPEG 2000 and JPEG XL: the files Pillow writes, Pillow's own decoding, rates that follow quality,
and a straight-through stand-in whose forward is the decoded image."""
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_hac.codecs import get_codec
from pytest_hac.codecs.pillow_codecs import FORMATS, codec_libraries
from pytest_hac.data import load_dataset
from pytest_hac.errors import HacError
from pytest_hac.registry import CODECS, validate_quality

QUALITY = {"webp": 50, "avif": 50, "jpeg2000": 30, "jpegxl": 50}
#: Six qualities across each range, low to high.
GRIDS = {"webp": [0, 20, 40, 60, 80, 100], "avif": [0, 20, 40, 60, 80, 100], "jpeg2000": [15, 24, 33, 42, 51, 60],
         "jpegxl": [0, 20, 40, 60, 80, 99]}
NAMES = sorted(FORMATS)


def _codec(name, quality=None):
    if name == "jpegxl":
        pytest.importorskip("pillow_jxl", reason="the jpegxl extra is not installed")
    return get_codec(name, QUALITY[name] if quality is None else quality)


@pytest.fixture(scope="module")
def photos():
    """The 20 embedded photos at 224 px, float in [0, 1]."""
    return load_dataset("embedded", resize=256, crop=224).pixels()


def test_every_format_is_registered_with_its_range_and_no_stand_in():
    assert set(GRIDS) == set(FORMATS)
    for name, fmt in FORMATS.items():
        info = CODECS.info(name)
        assert info.qualities == tuple(fmt.qualities) and info.stand_in is False
        assert fmt.library in CODECS.entry(name).description
    assert CODECS.info("jpeg").stand_in is True


@pytest.mark.parametrize("name", NAMES)
def test_payload_is_the_file_pillow_writes_and_decodes_as_pillow_does(name, photos, tmp_path):
    codec = _codec(name)
    x = photos[:3]
    encoded = codec.compress(x)
    decoded, bpp = codec.roundtrip(x)
    for i, img in enumerate(x):
        pixels = img.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        path = tmp_path / f"{name}-{i}"
        Image.fromarray(pixels, "RGB").save(path, format=FORMATS[name].pil_format, **FORMATS[name].options(
            codec.quality))
        written = path.read_bytes()
        assert encoded.payloads[i] == written
        assert bpp[i].item() == 8 * path.stat().st_size / (224 * 224)
        with Image.open(path) as reread:
            theirs = np.asarray(reread.convert("RGB"))
        ours = decoded[i].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(ours, theirs)  # bit for bit
        assert not np.array_equal(ours, pixels)  # lossy: the codec really changed the image


@pytest.mark.parametrize("name", NAMES)
def test_higher_quality_costs_more_bits_on_every_embedded_photo(name, photos):
    bpp = np.stack([_codec(name, q).compress(photos).bpp.numpy() for q in GRIDS[name]])
    assert (np.diff(bpp, axis=0) > 0).all(), bpp.round(3)


@pytest.mark.parametrize("name", NAMES)
def test_stand_in_is_the_real_round_trip_forward_and_the_identity_backward(name, photos):
    codec = _codec(name)
    x = photos[:2].clone().requires_grad_(True)
    out = codec.approximate(x)
    assert torch.equal(out.detach(), codec.roundtrip(photos[:2])[0])
    assert torch.equal(codec.bpda(x).detach(), out.detach())
    (out * 3).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


@pytest.mark.parametrize("name", NAMES)
def test_bytes_do_not_depend_on_the_batch_or_the_run(name, photos):
    codec = _codec(name)
    alone = codec.compress(photos[1:2]).payloads
    assert codec.compress(photos[:3]).payloads[1:2] == alone == _codec(name).compress(photos[1:2]).payloads


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (33, 20)])
def test_small_and_odd_sizes_round_trip_at_their_own_size(name, size):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    decoded, bpp = _codec(name).roundtrip(x)
    assert decoded.shape == x.shape and (bpp > 0).all()


def test_images_beyond_the_library_limit_are_refused_with_the_fix():
    with pytest.raises(HacError, match=r"at most 16383 px a side \(libwebp's limit\).*--hac-input-size"):
        _codec("webp").compress(torch.zeros(1, 3, 2, 16384))


@pytest.mark.parametrize("name, quality, valid", [
    ("jpegxl", 100, "0..99"), ("jpeg2000", 0, "15..60"), ("webp", 101, "0..100"), ("avif", -1, "0..100")])
def test_qualities_outside_the_lossy_range_are_refused(name, quality, valid):
    with pytest.raises(HacError, match=f"valid qualities are {valid}"):
        validate_quality(name, quality)


def test_jpegxl_without_its_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)  # import fails as when the package is absent
    with pytest.raises(HacError, match=r"pip install 'pytest-hac\[jpegxl\]'"):
        get_codec("jpegxl", 50)


def test_library_versions_are_recorded_and_listed():
    from pytest_hac.plugin.listing import listing
    from pytest_hac.report.provenance import versions

    recorded = versions()
    assert {"libjpeg-turbo", "libwebp", "libavif", "OpenJPEG"} <= set(recorded) <= set(recorded) | {"pillow-jxl-plugin"}
    assert recorded == {**recorded, **codec_libraries()} and "aom" in recorded["libavif"]
    text = listing()
    for name in NAMES:
        line = next(line for line in text.splitlines() if line.strip().startswith(name + " "))
        assert FORMATS[name].library in line and "qualities" in line
