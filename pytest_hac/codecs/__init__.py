"""Codec registry: ``get_codec(name, quality)`` builds a defense by name.

Built-in entries register here through the same door users take
(``register_codec``); learned codecs import CompressAI only when built.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import HacError
from ..registry import Registry
from .base import Codec, Encoded, Identity, apply_rounds, to_uint8
from .jpeg import Jpeg, KorniaJpeg

CODECS: Registry[Codec] = Registry("codec")

__all__ = ["CODECS", "Codec", "Encoded", "apply_rounds", "get_codec", "register_codec", "to_uint8", "validate_quality"]


def register_codec(
    name: str,
    factory: Callable[..., Codec] | None = None,
    *,
    qualities: Sequence[int] | None = None,
    description: str = "",
    aliases: tuple[str, ...] = (),
    replace: bool = False,
):
    """Register a codec factory ``factory(quality, *, weights_dir) -> Codec``.

    ``qualities`` lists the valid quality levels (None for codecs without one).
    """
    return CODECS.register(
        name, factory, description=description, aliases=aliases, replace=replace,
        qualities=None if qualities is None else tuple(qualities),
    )


def validate_quality(name: str, quality: int | None) -> int | None:
    """Check ``quality`` against the codec's range; returns it as an int (or None)."""
    entry = CODECS.entry(name)
    valid = entry.meta.get("qualities")
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
    valid = CODECS.entry(name).meta.get("qualities")
    return "no quality" if valid is None else f"qualities {_describe(valid)}"


def get_codec(
    name: str,
    quality: int | None = None,
    *,
    device: torch.device | str = "cpu",
    weights_dir: Path | None = None,
) -> Codec:
    """Build codec ``name`` at ``quality`` on ``device``."""
    entry = CODECS.entry(name)
    quality = validate_quality(entry.name, quality)
    codec = entry.factory(quality, weights_dir=weights_dir)
    return codec.to(device)


register_codec("identity", lambda q, **_: Identity(), description="no defense (the bare model)", aliases=("none",))
register_codec("jpeg", lambda q, **_: Jpeg(q), qualities=range(1, 101), description="real libjpeg via PIL / nvJPEG")
register_codec(
    "jpeg-kornia", lambda q, **_: KorniaJpeg(q), qualities=range(1, 101),
    description="kornia's differentiable JPEG, as the paper evaluated; bpp from libjpeg",
)

from . import learned as _learned  # noqa: E402,F401  (registers the learned codecs lazily)
