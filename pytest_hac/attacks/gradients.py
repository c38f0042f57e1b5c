"""The zero-gradient probe's question about an input gradient, one definition for wherever the gradient was taken
(the probe's own pass, or an attack's first step at the clean images)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def masked(grad: Tensor) -> Tensor:
    """Per image of ``grad`` (N, ...): is its input gradient all zero or not finite? A bool tensor on grad's device."""
    flat = grad.detach().flatten(1)
    return ~flat.isfinite().all(1) | (flat == 0).all(1)
