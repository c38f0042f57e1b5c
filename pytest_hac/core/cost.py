"""What an attack through a defense will cost, said before it starts.

A query attack through a learned codec costs up to images x queries x rounds codec passes (Square
stops early per image once it is fooled); a gradient attack images x steps x eot x rounds. Before such
an attack the engine measures one batch pass of the attacked module and states the planned passes and an
estimate: on the progress line always for query attacks, and in the ``pytest_hac`` log (a warning) when
the estimate exceeds :data:`LONG_SECONDS`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import AttackSpec

__all__ = ["LONG_SECONDS", "Plan", "plan_attack"]

#: An estimate above this many seconds is also logged as a warning.
LONG_SECONDS = 180.0
log = logging.getLogger("pytest_hac")


@dataclass(frozen=True)
class Plan:
    """Planned passes of an attack through the defense, and the estimated seconds at the measured rate."""

    passes: int
    seconds: float
    query: bool

    @property
    def worth_saying(self) -> bool:
        """Query attacks always, others when the estimate is long."""
        return self.query or self.seconds > LONG_SECONDS

    def text(self) -> str:
        kind = "queries" if self.query else "steps"
        bound = "at most " if self.query else ""
        return f"{bound}{self.passes:,} codec passes ({kind}), about {_duration(self.seconds)} at the measured rate"


def plan_attack(target: nn.Module, spec: AttackSpec, images: int, rounds: int, xb: Tensor, yb: Tensor) -> Plan:
    """Time one warm pass of ``target`` on the batch ``xb`` (with its gradient unless the attack is gradient-free).

    The passes are an upper bound for a query attack (it stops per image once fooled), hence "at most".
    """
    query = spec.info.gradient_free
    per_image = spec.steps * max(1, spec.eot) * rounds
    def one_pass() -> None:
        if query:
            with torch.no_grad():
                target(xb)
        else:
            x = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                torch.autograd.grad(F.cross_entropy(target(x), yb), x)

    one_pass()  # warm: the first call pays lazy set-up the attack pays once
    start = time.perf_counter()
    one_pass()
    per_pass = (time.perf_counter() - start) / (len(xb) * rounds)
    plan = Plan(images * per_image, images * per_image * per_pass, query)
    if plan.seconds > LONG_SECONDS:
        log.warning("%s: %s", spec.name, plan.text())
    return plan


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
