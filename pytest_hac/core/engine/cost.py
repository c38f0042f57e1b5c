"""What an attack through a defense will cost, said before it starts.

A query attack through a learned codec costs up to images x queries x rounds codec passes (Square
stops early per image once it is fooled); a gradient attack images x steps x eot x rounds. Before a
query attack, or a gradient attack long enough that timing costs under 2%, the engine times one warm
batch pass of the attacked module and states the planned passes and an estimate: on the progress line
for query attacks and long ones, and in the ``pytest_hac`` log (a warning) when the estimate exceeds
:data:`LONG_SECONDS`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attacks import AttackSpec
from ...formats import duration

__all__ = ["LONG_SECONDS", "AttackEstimate", "estimate_attack", "planned_passes", "worth_estimating"]

#: An estimate above this many seconds is also logged as a warning.
LONG_SECONDS = 180.0
#: A gradient attack is timed only when it plans this many batch passes or more (the timing costs two).
MEASURE_FROM_BATCHES = 100
log = logging.getLogger("pytest_hac")


@dataclass(frozen=True)
class AttackEstimate:
    """CellProbes passes of an attack through the defense, and the estimated seconds at the measured rate."""

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
        return f"{bound}{self.passes:,} codec passes ({kind}), about {duration(self.seconds)} at the measured rate"


def planned_passes(spec: AttackSpec, images: int, rounds: int) -> int:
    """Codec passes of an attack: images x steps (queries) x eot x rounds."""
    return images * spec.steps * max(1, spec.eot) * rounds


def worth_estimating(spec: AttackSpec, images: int, rounds: int, batch: int) -> bool:
    """Query attacks always; a gradient attack only when long enough that timing two passes costs under 2%."""
    return spec.info.gradient_free or planned_passes(spec, images, rounds) >= MEASURE_FROM_BATCHES * batch


def estimate_attack(target: nn.Module, spec: AttackSpec, images: int, rounds: int, xb: Tensor,
                    yb: Tensor) -> AttackEstimate:
    """Time one warm pass of ``target`` on the batch ``xb`` (with its gradient unless the attack is gradient-free).

    The passes are an upper bound for a query attack (it stops per image once fooled), hence "at most".
    """
    query = spec.info.gradient_free
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
    passes = planned_passes(spec, images, rounds)
    plan = AttackEstimate(passes, passes * per_pass, query)
    if plan.seconds > LONG_SECONDS:
        log.warning("%s: %s", spec.name, plan.text())
    return plan
