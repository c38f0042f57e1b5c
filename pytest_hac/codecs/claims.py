"""What a codec says about itself, checked before it is believed: a codec that declares ``stochastic = False``
must decode the same images to the same pixels, call after call and whatever else is in the batch.

A hidden random draw (a quality per call, noise from torch's generator) or a batch-dependent coding makes a
deterministic codec's numbers differ between runs, batch sizes, xdist workers and shards, and a single gradient
stands in for an expectation EOT should take. :func:`check_deterministic` runs once per built codec
(:func:`~pytest_hac.codecs.get_codec`), on the fast path's probe images, and refuses the codec with the fix.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import HacError
from .base import Codec

__all__ = ["check_deterministic"]

#: Convolutions pick kernels by batch size (and on CUDA may pick non-deterministic ones): a learned codec's float
#: output then differs in its last bits, and a decoded pixel that sits on a rounding edge moves by one 8-bit level
#: (tiny-hific q1: a few values of the 7 probe images, alone against in a batch, with one torch thread). Up to this
#: share of values one level apart is tolerated between an image alone and in a batch, and on CUDA between two
#: calls; on CPU two calls on the same batch must agree exactly.
LEVEL_SHARE = 1e-3


def check_deterministic(codec: Codec, x: Tensor) -> Tensor:
    """``codec.roundtrip(x)``'s image, after checking that ``codec`` (which says it is deterministic) is: ``x`` decoded
    twice gives the same images, and its first image decoded alone gives the same image as in the batch.

    Torch's random state is left as it was. Raises :class:`HacError` naming the codec and the fix.
    """
    devices = [codec.device] if codec.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        first = codec.roundtrip(x)[0].clone()
        again = codec.roundtrip(x)[0]
        alone = codec.roundtrip(x[:1])[0]
    if _differs(first, again, tolerant=codec.device.type == "cuda"):
        raise HacError(f"codec {codec.label} says it is deterministic (stochastic = False), but decoding the same "
                       f"{len(x)} probe images twice gave different images ({_levels(first, again)}): declare "
                       f"`stochastic = True` on the codec's class and attack it with EOT (eot=20 in the marker, as "
                       f"AutoAttack's randomized-defense mode does), or remove the random draw")
    if _differs(first[:1], alone, tolerant=True):
        raise HacError(f"codec {codec.label} says it is deterministic (stochastic = False), but an image decodes "
                       f"differently alone than beside other images ({_levels(first[:1], alone)}): its results "
                       f"would change with the batch size, under xdist and in shards; code each image of a batch "
                       f"on its own (no batch statistics, no batch-wide quality)")
    return first


def _levels_off(a: Tensor, b: Tensor) -> Tensor | None:
    """Per value, how many 8-bit levels ``a`` and ``b`` are apart (None: they differ in shape)."""
    return None if a.shape != b.shape else (a.float() - b.float()).abs().mul(255).round()


def _differs(a: Tensor, b: Tensor, *, tolerant: bool) -> bool:
    off = _levels_off(a, b)
    if off is None:
        return True
    if tolerant:
        return bool(off.max() > 1) or float((off > 0).float().mean()) > LEVEL_SHARE
    return bool(off.any())


def _levels(a: Tensor, b: Tensor) -> str:
    off = _levels_off(a, b)
    if off is None:
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
    return f"up to {int(off.max())} 8-bit levels apart on {float((off > 0).float().mean()):.1%} of the values"
