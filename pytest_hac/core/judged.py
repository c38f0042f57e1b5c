"""Adversarial images through the real defense, and the worst case over restarts."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Judged:
    """Source images through the real defense: per-image correctness, what the classifier saw, bpp."""

    correct: Tensor
    images: Tensor
    bpp: Tensor | None


def worst_of(judged: list[Judged]) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per image the first restart the pipeline gets wrong (else the first): correct only if right on all.

    Returns correctness, the images the classifier saw and their bpp for the restart kept.
    """
    first = judged[0]
    if len(judged) == 1:
        return first.correct, first.images, first.bpp
    correct, images = first.correct.clone(), first.images.clone()
    bpp = None if first.bpp is None else first.bpp.clone()
    for j in judged[1:]:
        take = correct & ~j.correct
        images[take] = j.images[take]
        if bpp is not None:
            bpp[take] = j.bpp[take]
        correct &= j.correct
    return correct, images, bpp
