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

from pathlib import Path

import torch

from ..registry import CODECS, quality_text, validate_quality
from .base import Codec, Encoded, to_uint8
from .claims import check_deterministic
from .fastpath import probe_images, verify_fast_path

__all__ = ["Codec", "Encoded", "get_codec", "quality_text", "to_uint8", "validate_quality"]


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
