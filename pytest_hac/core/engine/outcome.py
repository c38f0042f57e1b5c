"""What a cell keeps of its images: per-image outcomes, never the images themselves.

An :class:`Outcome` is a source (clean images or one attack's restart) through one defense:
for each image, whether the classifier got it right, its bits per pixel and its PSNR. It is
a few numbers per image, so outcomes are kept for the whole session while the tensors that
produced them are not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Outcome:
    """Per image: correct (bool), bits per pixel and PSNR in dB (float64; None without a codec)."""

    correct: Tensor
    bpp: Tensor | None = None
    psnr: Tensor | None = None

    def as_tuple(self) -> tuple[Tensor, ...]:
        """For the store: bpp and PSNR as empty tensors when absent."""
        empty = torch.empty(0, dtype=torch.float64)
        return (self.correct, empty if self.bpp is None else self.bpp, empty if self.psnr is None else self.psnr)

    @classmethod
    def from_tuple(cls, value: tuple[Tensor, ...]) -> Outcome:
        correct, bpp, psnr = value
        return cls(correct.bool(), bpp if bpp.numel() else None, psnr if psnr.numel() else None)

    @classmethod
    def cat(cls, parts: list[Outcome]) -> Outcome:
        """Chunks of images, in order, as one outcome."""
        first = parts[0]
        return cls(torch.cat([p.correct for p in parts]),
                   None if first.bpp is None else torch.cat([p.bpp for p in parts]),
                   None if first.psnr is None else torch.cat([p.psnr for p in parts]))


def worst_of(outcomes: list[Outcome]) -> Outcome:
    """Per image, the first restart the pipeline gets wrong (else the first): correct only if right on all.

    bpp and PSNR are those of the restart kept for each image.
    """
    first = outcomes[0]
    if len(outcomes) == 1:
        return first
    correct = first.correct.clone()
    bpp = None if first.bpp is None else first.bpp.clone()
    psnr = None if first.psnr is None else first.psnr.clone()
    for o in outcomes[1:]:
        take = correct & ~o.correct
        if bpp is not None:
            bpp[take] = o.bpp[take]
        if psnr is not None:
            psnr[take] = o.psnr[take]
        correct &= o.correct
    return Outcome(correct, bpp, psnr)


#: Images whose squared errors are summed in float64 at once (a whole chunk would need 8 bytes per value).
PSNR_BATCH = 16


def psnr_per_image(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR (dB, peak 1.0) of each image of ``x`` against ``ref``, in float64."""
    mse = torch.cat([(x[i:i + PSNR_BATCH].double() - ref[i:i + PSNR_BATCH].double()).pow(2).flatten(1).mean(1)
                     for i in range(0, len(x), PSNR_BATCH)])
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
