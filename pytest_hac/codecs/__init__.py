"""``get_codec(name, quality)`` builds a defense by name from :data:`~pytest_hac.registry.CODECS`.

Built-in codecs register in :mod:`.builtin` through the same door users take
(:func:`~pytest_hac.registry.register_codec`); learned codecs import CompressAI only when built. What a codec
declares is checked when it is built: its determinism (:mod:`.claims`) and its fast path (:mod:`.fastpath`).

The package, one concern a module: :mod:`.base` (the contract, padding), :mod:`.jpeg`,
:mod:`.payload` (bitstream formats), :mod:`.ste` (straight-through rounding),
:mod:`.compressai_codec` (any CompressAI model as a codec), :mod:`.compressai_zoo`,
:mod:`.elic`, :mod:`.tiny` (the embedded codecs), :mod:`.hific` (model, checkpoint, coding) and
:mod:`.pillow_codecs` (WebP, AVIF, JPEG 2000, JPEG XL through Pillow).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import HacError
from ..registry import CODECS
from .base import Codec, Encoded, to_uint8
from .claims import check_deterministic
from .fastpath import probe_images, verify_fast_path

__all__ = ["Codec", "Encoded", "get_codec", "quality_text", "to_uint8", "validate_quality"]


def validate_quality(name: str, quality: int | None) -> int | None:
    """Check ``quality`` against the codec's range; returns it as an int (or None)."""
    entry = CODECS.entry(name)
    valid = entry.info.qualities
    if valid is None:
        if quality not in (None, 0):
            raise HacError(f"codec {entry.name!r} has no quality setting; use codecs={{'{entry.name}': [None]}}")
        return None
    if quality is None or isinstance(quality, bool) or int(quality) != quality or int(quality) not in valid:
        raise HacError(
            f"quality {quality!r} is out of range for codec {entry.name!r}: valid qualities are "
            f"{_describe(valid)}"
        )
    return int(quality)


def _describe(valid: Sequence[int]) -> str:
    if len(valid) > 5 and list(valid) == list(range(valid[0], valid[-1] + 1)):
        return f"{valid[0]}..{valid[-1]}"
    return ", ".join(map(str, valid))


def quality_text(name: str) -> str:
    """``qualities 1..100``, ``qualities 1, 2, 3`` or ``no quality``: how listings describe a codec's range."""
    valid = CODECS.info(name).qualities
    return "no quality" if valid is None else f"qualities {_describe(valid)}"


def get_codec(
    name: str,
    quality: int | None = None,
    *,
    device: torch.device | str = "cpu",
    weights_dir: Path | None = None,
    offline: bool = False,
) -> Codec:
    """Build codec ``name`` at ``quality`` on ``device``; local checkpoints come from ``weights_dir``,
    and with ``offline`` nothing is downloaded."""
    entry = CODECS.entry(name)
    quality = validate_quality(entry.name, quality)
    codec = entry.factory(quality, weights_dir=weights_dir, offline=offline).to(device)
    if entry.name == "identity":
        return codec
    # What the codec declares is checked once, here: it is deterministic (unless it says it is random), and its
    # attack fast path decodes what the bitstream does (the one place the fast path is accepted or refused).
    x = probe_images().to(codec.device)
    verify_fast_path(codec, x, decoded=None if codec.stochastic else check_deterministic(codec, x))
    return codec
