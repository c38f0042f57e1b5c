"""An attack's output is checked, never corrected: inside [0, 1] and inside its eps ball, or an error."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import HacError
from . import AttackSpec

#: Float round-off allowed beyond [0, 1] and the eps ball (relative to eps for L2).
BALL_TOLERANCE = 1e-5


def check_budget(adv: Tensor, x: Tensor, spec: AttackSpec) -> None:
    """Raise :class:`HacError` when ``adv`` is not inside [0, 1] and ``spec``'s eps ball around ``x``.

    Asserted, not enforced: clipping a broken attack would report it as a weak one.
    Minimum-norm attacks (no eps) are held to [0, 1] only.
    """
    if adv.shape != x.shape:
        raise HacError(f"attack {spec.name!r} returned a batch shaped {tuple(adv.shape)} for images shaped "
                       f"{tuple(x.shape)}; an attack returns one adversarial image per input")
    if not bool(torch.isfinite(adv).all()):
        raise HacError(f"attack {spec.name!r} returned NaN or infinite pixels; fix the attack")
    outside = max(float(-adv.min()), float(adv.max()) - 1.0)
    if outside > BALL_TOLERANCE:
        raise HacError(f"attack {spec.name!r} returned pixels outside [0, 1] (by up to {outside:.3g}); attacks take "
                       f"and return images in [0, 1]: clamp inside the attack")
    if spec.eps is None:
        return
    delta = (adv - x).flatten(1).double()
    size = delta.abs().amax(1) if spec.norm == "Linf" else delta.norm(dim=1)
    excess = float(size.max()) - spec.eps if len(size) else 0.0
    if excess > BALL_TOLERANCE * max(1.0, spec.eps):
        raise HacError(f"attack {spec.name!r} left its {spec.norm} ball of eps {spec.eps_label}: the largest "
                       f"perturbation exceeds eps by {excess:.3g} ({spec.norm} norm {float(size.max()):.4g}). "
                       f"pytest-hac checks the budget instead of clipping, so a broken attack cannot pass as a weak "
                       f"one; project onto the eps ball inside the attack")
