"""The production image codecs through Pillow: WebP (libwebp), AVIF (libavif with aom), JPEG 2000 (OpenJPEG)
and JPEG XL (libjxl through the ``pillow-jxl-plugin`` package, the ``jpegxl`` extra).

Each image is written as the file the library writes (``Image.save``) and read back with ``Image.open``:
bits per pixel are those files' lengths. Every format is 8-bit RGB in and out, at the image's own size
(like libjpeg, each library pads to its blocks internally and crops on decoding, so no padding of ours
changes the bytes), lossy only: each format's lossless mode is never asked for, and a quality that
would select it is outside the format's range.

None of them has a differentiable stand-in: :meth:`PillowCodec.approximate` is the straight-through
real round trip (the decoded image forward, the identity backward), so white-box and adaptive attacks
are BPDA with the identity, and a stand-in's forward equals the decoded image exactly.
"""
from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import HacError
from .base import Codec, Encoded, check_images, to_uint8
from .ste import identity_backward

__all__ = ["FORMATS", "PillowCodec", "PillowFormat", "codec_libraries", "library_version", "pillow_factory"]


@dataclass(frozen=True)
class PillowFormat:
    """One Pillow image format as a codec.

    Attributes:
        name: the registry key.
        pil_format: Pillow's format name for ``Image.save``.
        library: the library that encodes it, as reports name it.
        qualities: the valid qualities, as the library defines them (see ``meaning``).
        meaning: what a quality is, for ``--hac-list`` and the README.
        options: ``Image.save`` keywords at a quality (lossy mode, fixed effort and threads).
        feature: Pillow's feature name for the library (``PIL.features``), or None for a plugin.
        plugin: the module that registers the format with Pillow, or None when Pillow has it.
        extra: the pytest-hac extra that installs the plugin.
        max_side: the largest image side the format holds, or None.
    """

    name: str
    pil_format: str
    library: str
    qualities: range
    meaning: str
    options: Callable[[int], dict[str, Any]]
    feature: str | None = None
    plugin: str | None = None
    extra: str | None = None
    max_side: int | None = None

    @property
    def version_key(self) -> str:
        """Its name among the report's recorded versions: the library's, or the plugin package's."""
        return self.library if self.plugin is None else self.plugin.replace("_", "-") + "-plugin"

    @property
    def description(self) -> str:
        extra = f"; needs pip install 'pytest-hac[{self.extra}]'" if self.extra else ""
        return f"real {self.library} via Pillow; quality = {self.meaning}; BPDA (no differentiable stand-in){extra}"


# Effort and threads are fixed: the bytes (and so bpp, the decoded image and the disk cache) must not depend
# on the machine's core count or Pillow's defaults. Each is the library's own default effort.
FORMATS: dict[str, PillowFormat] = {f.name: f for f in (
    PillowFormat("webp", "WEBP", "libwebp", range(0, 101),
                 "libwebp's lossy quality 0..100 (4:2:0; lossless WebP is never used)",
                 lambda q: {"quality": q, "lossless": False, "method": 4}, feature="webp", max_side=16383),
    PillowFormat("avif", "AVIF", "libavif", range(0, 101),
                 "libavif's quality 0..100 (4:2:0 YUV; 100 is AV1's finest quantizer, still lossy through "
                 "4:2:0)",
                 lambda q: {"quality": q, "subsampling": "4:2:0", "speed": 6, "max_threads": 1}, feature="avif",
                 max_side=65536),
    PillowFormat("jpeg2000", "JPEG2000", "OpenJPEG", range(15, 61),
                 "OpenJPEG's target PSNR in dB 15..60 (irreversible 9/7 wavelet, one layer; the lossless 5/3 "
                 "wavelet is never used)",
                 lambda q: {"quality_mode": "dB", "quality_layers": [float(q)], "irreversible": True},
                 feature="jpg_2000"),
    PillowFormat("jpegxl", "JXL", "libjxl", range(0, 100),
                 "libjxl's quality 0..99 (100 is lossless and refused; effort 7)",
                 lambda q: {"quality": q, "lossless": False, "effort": 7}, plugin="pillow_jxl", extra="jpegxl"),
)}


def _available(fmt: PillowFormat) -> None:
    """Raise a usage error naming the fix when Pillow cannot write ``fmt`` here."""
    if fmt.plugin is not None:
        try:
            importlib.import_module(fmt.plugin)
        except ImportError:
            raise HacError(f"codec {fmt.name!r} needs the {fmt.extra!r} extra: pip install 'pytest-hac[{fmt.extra}]' "
                           f"(it installs {fmt.version_key}, {fmt.library} for Pillow)") from None
    elif fmt.feature is not None:
        from PIL import features

        if not features.check(fmt.feature):
            raise HacError(f"codec {fmt.name!r} needs Pillow built with {fmt.library}; this Pillow has none "
                           f"(install a Pillow wheel from PyPI: pip install --force-reinstall pillow)")


def library_version(fmt: PillowFormat) -> str | None:
    """The version of the library behind ``fmt`` (the plugin package's for JPEG XL), or None if absent."""
    if fmt.plugin is not None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(fmt.version_key)
        except PackageNotFoundError:
            return None
    from PIL import features

    return features.version(fmt.feature) if fmt.feature else None


def codec_libraries() -> dict[str, str]:
    """Versions of the image libraries the codecs encode with (libjpeg-turbo too): recorded in every report."""
    from PIL import features

    out = {"libjpeg-turbo": features.version("libjpeg_turbo")}
    for fmt in FORMATS.values():
        out[fmt.version_key] = library_version(fmt)
    if out.get("libavif"):
        from PIL import _avif

        out["libavif"] += f" ({_avif.codec_versions()})"
    return {k: v for k, v in out.items() if v}


class PillowCodec(Codec):
    """Images through a Pillow format at ``quality``: the bytes ``Image.save`` writes, decoded by ``Image.open``."""

    def __init__(self, fmt: PillowFormat, quality: int) -> None:
        super().__init__()
        _available(fmt)
        self.format = fmt
        self.name = fmt.name
        self.quality = int(quality)
        self._options = fmt.options(self.quality)

    def _encode(self, pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        try:
            Image.fromarray(pixels, "RGB").save(buffer, format=self.format.pil_format, **self._options)
        except (OSError, ValueError, RuntimeError) as exc:
            h, w = pixels.shape[:2]
            raise HacError(f"{self.format.library} could not encode a {w}x{h} image at {self.label}: {exc}") from None
        return buffer.getvalue()

    def compress(self, x: Tensor) -> Encoded:
        check_images(x)
        h, w = x.shape[-2:]
        limit = self.format.max_side
        if limit is not None and max(h, w) > limit:
            raise HacError(f"codec {self.name!r} holds images of at most {limit} px a side ({self.format.library}'s "
                           f"limit); these are {w}x{h}: resize them (--hac-input-size) or use another codec")
        pixels = to_uint8(x).mul(255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return Encoded([self._encode(img) for img in pixels], h, w)

    def _decode(self, payload: bytes, h: int, w: int) -> np.ndarray:
        with Image.open(io.BytesIO(payload)) as img:
            if img.mode != "RGB" or img.size != (w, h):
                raise HacError(f"{self.format.library} decoded a {img.mode} {img.size[0]}x{img.size[1]} image from a "
                               f"{w}x{h} RGB file written at {self.label}; 8-bit RGB of the written size was expected")
            return np.asarray(img)

    def decompress(self, encoded: Encoded) -> Tensor:
        arrays = [self._decode(p, encoded.height, encoded.width) for p in encoded.payloads]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255).to(self.device)

    def approximate(self, x: Tensor) -> Tensor:
        """No differentiable stand-in: the real round trip forward, the identity backward (straight-through)."""
        return identity_backward(x, self.attack_decode(x.detach()))

    def bpda(self, x: Tensor) -> Tensor:
        # approximate's forward is already the real decode (the codec is deterministic): one round trip, not two
        return self.approximate(x)


def pillow_factory(name: str) -> Callable[..., PillowCodec]:
    """The registry factory of format ``name``."""
    fmt = FORMATS[name]

    def factory(quality: int, **_: Any) -> PillowCodec:
        return PillowCodec(fmt, quality)

    return factory
