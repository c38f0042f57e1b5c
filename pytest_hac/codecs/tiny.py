"""The embedded tiny codecs ``tiny-mse`` and ``tiny-hific`` (qualities 1..3; see ``weights/CODECS.md``).

Both are CompressAI's MeanScaleHyperprior at :data:`TINY_ARCHITECTURE`, trained by
``scripts/train_tiny_codecs.py``. Their files ``pytest_hac/weights/<kind>-q<quality>.pt``
hold the transform weights in float16, the entropy-model parameters in float32 and no
entropy tables (``update()`` rebuilds those from the weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..io.checkpoints import EMBEDDED_WEIGHTS, load_state_dict
from .compressai_codec import CompressAICodec, load_state_strict

__all__ = [
    "TINY_ARCHITECTURE", "TINY_QUALITIES", "build_tiny_codec_net", "load_tiny_codec", "load_tiny_codec_net",
    "tiny_codec_path", "tiny_factory",
]

#: CompressAI's MeanScaleHyperprior (Minnen et al. 2018 without context model) at a size where
#: six models in float16 stay under 10 MB (about 1.5 MB each).
TINY_ARCHITECTURE: dict[str, int] = {"N": 40, "M": 64}
TINY_QUALITIES = (1, 2, 3)


def tiny_codec_path(kind: str, quality: int) -> Path:
    """``pytest_hac/weights/<kind>-q<quality>.pt``."""
    return EMBEDDED_WEIGHTS / f"{kind}-q{quality}.pt"


def build_tiny_codec_net() -> nn.Module:
    """A fresh (random) tiny network: what ``scripts/train_tiny_codecs.py`` trains."""
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(**TINY_ARCHITECTURE)


def load_tiny_codec_net(kind: str, quality: int, path: Path | None = None) -> nn.Module:
    """The network of embedded codec ``kind`` ("tiny-mse" or "tiny-hific") at ``quality`` 1..3, in float32.

    ``path`` replaces the embedded file (a freshly trained one).
    """
    path = path or tiny_codec_path(kind, quality)
    net = build_tiny_codec_net()
    what = f"embedded {kind} q{quality} weights (reinstall pytest-hac or rerun scripts/train_tiny_codecs.py)"
    state = load_state_dict(path, what=what)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    load_state_strict(net, state, what)
    return net


def load_tiny_codec(kind: str, quality: int, path: Path | None = None) -> CompressAICodec:
    """Embedded codec ``kind`` at ``quality`` (see :func:`load_tiny_codec_net`), labelled ``<kind>-q<quality>``."""
    return CompressAICodec(load_tiny_codec_net(kind, quality, path), name=kind, quality=quality)


def tiny_factory(kind: str):
    """The registry factory of ``tiny-mse`` or ``tiny-hific``."""
    def factory(quality: int, **_: Any) -> CompressAICodec:
        return load_tiny_codec(kind, quality)

    return factory
