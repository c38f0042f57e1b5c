"""The attack-time fast path of a codec: its decoded image without the entropy coder, and the check that
it equals ``roundtrip`` bit for bit.

Entropy coding is lossless: what ``decompress`` returns is a function of the quantized symbols only. A
codec may declare :meth:`~.base.Codec.fast_decode` (the decoded image computed from the symbols, skipping
rANS and the payload); :func:`verify_fast_path` compares it with ``roundtrip`` on probe images once, when
:func:`~pytest_hac.codecs.get_codec` builds the codec, and only a verified codec uses it. A codec whose fast
path differs falls back to the real coder (with a warning naming it). Evaluated cells, bits per pixel and
PSNR always come from real bytes; only attack queries (BPDA forward, query attacks, probes) take this path.

For CompressAI-based codecs :func:`symbols_only` runs the model's own ``compress``/``decompress`` with the
entropy models' rANS step replaced by handing the integer symbols over: every quantization, mean and
median is CompressAI's own code, so the image is what ``decompress`` would return.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .base import Codec

__all__ = ["probe_images", "symbols_only", "verify_fast_path"]


def probe_images(height: int = 48, width: int = 80) -> Tensor:
    """Deterministic images that exercise a codec: smooth noise, white noise, flat gray, a gradient, 0 and 1."""
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, height // 8, width // 8, generator=gen),
                                             size=(height, width), mode="bilinear", align_corners=False)
    noise = torch.rand(1, 3, height, width, generator=gen)
    flat = torch.full((1, 3, height, width), 0.5)
    ramp = torch.linspace(0, 1, width).expand(1, 3, height, width)
    extremes = torch.stack([torch.zeros(3, height, width), torch.ones(3, height, width)])
    return torch.cat([smooth, noise, flat, ramp, extremes]).clamp(0, 1)


def fast_path_differs(codec: Codec, x: Tensor, real: Tensor) -> float:
    """Largest |fast_decode(x) - real| in 8-bit levels, ``real`` being ``roundtrip(x)``'s image (0: identical)."""
    fast = codec.fast_decode(x)
    if fast is None or fast.shape != real.shape:
        return float("inf")
    return float((fast.float() - real.float()).abs().max().mul(255)) if len(x) else 0.0


def verify_fast_path(codec: Codec, images: Tensor | None = None, decoded: Tensor | None = None) -> bool:
    """Decide, once, whether ``codec`` attacks through its fast path; sets and returns ``codec.fast_path``.

    A codec that declares none (``fast_decode`` returns None) or is stochastic keeps the real coder
    silently; one whose fast path differs from ``roundtrip`` on the probe images keeps it with a warning.
    ``decoded``: ``roundtrip(images)``'s image where the caller has it already.
    """
    codec.fast_path = False
    x = (probe_images() if images is None else images).to(codec.device)
    if codec.stochastic or codec.fast_decode(x[:1]) is None:
        return False
    # Two rounds: the second codes the first's output, as sequential compression does. Each real coding
    # (the slow part of building a learned codec) runs once.
    first = codec.roundtrip(x)[0] if decoded is None else decoded
    second = codec.roundtrip(first)[0]
    worst = max(fast_path_differs(codec, x, first), fast_path_differs(codec, first, second))
    if worst != 0:
        warnings.warn(f"codec {codec.label}: its fast decode differs from the real bitstream by up to {worst:g} "
                      f"8-bit levels; attacks through it use the real entropy coder (slower, same results)",
                      stacklevel=2)
        return False
    codec.fast_path = True
    return True


# --------------------------------------------------------------------------- CompressAI: rANS handed over


@functools.cache
def _handover(cls: type) -> type:
    """``cls`` (an entropy model class) with ``EntropyModel.compress``/``decompress`` handing symbols over.

    The mixin sits between ``cls`` and ``EntropyModel`` in the method order, so ``cls``'s own
    ``compress``/``decompress`` (medians, indexes, shapes) still run and only rANS is skipped.
    """
    from compressai.entropy_models import EntropyModel

    class Handover(EntropyModel):
        symbols_only = True

        def compress(self, inputs: Tensor, indexes: Tensor, means: Tensor | None = None) -> list[Tensor]:
            # The same symbols EntropyModel.compress codes, one "string" per image.
            return list(self.quantize(inputs, "symbols", means))

        def decompress(self, strings: list[Tensor], indexes: Tensor, dtype: torch.dtype = torch.float,
                       means: Tensor | None = None) -> Tensor:
            # EntropyModel.decompress: int32 symbols shaped like the indexes, then its dequantize.
            symbols = torch.stack(list(strings)).to(self._quantized_cdf.device, torch.int32)
            return self.dequantize(symbols.reshape(indexes.size()), means, dtype)

    return type(f"{cls.__name__}SymbolsOnly", (cls, Handover), {})


@contextlib.contextmanager
def symbols_only(*modules: Any) -> Iterator[None]:
    """Within the block, every CompressAI entropy model in ``modules`` hands symbols over instead of coding them.

    The swap is per instance and undone on exit (the engine runs codecs from one thread).
    """
    from compressai.entropy_models import EntropyModel

    swapped: list[tuple[nn.Module, type]] = []
    try:
        for module in modules:
            for m in module.modules():
                if isinstance(m, EntropyModel) and not getattr(m, "symbols_only", False):
                    swapped.append((m, type(m)))
                    m.__class__ = _handover(type(m))
        yield
    finally:
        for m, cls in swapped:
            m.__class__ = cls
