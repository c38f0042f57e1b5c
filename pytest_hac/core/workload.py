"""What a run's cells cost, before they run: passes of the model and the codecs per cell, and seconds.

:func:`workload` walks the cells in order with the engine's own keys, so work shared between cells
(an oblivious attack used by every defense, codec rounds, clean outcomes) is counted once, at the
first cell that needs it, as the engine computes it:

* attack passes: images x steps x restarts x EOT forward-and-backward passes through what the
  attacker sees (the bare model, or the model behind the defense's stand-in); for a gradient-free
  (query) attack, images x queries x restarts forward passes;
* codec passes: images x rounds real round trips of the codec;
* model passes: images classified.

:func:`measure` times one batch of each kind (the warm-up) and :func:`seconds` turns passes into an
estimate. The soundness probes (a small share: a few dozen images per attack) are not counted.
:func:`weights` gives each cell a unitless cost, for the estimated time left of a running session.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from .cases import Case
from .keys import AdvKey, CodecRef

if TYPE_CHECKING:
    from .engine import Engine

#: A forward-and-backward pass costs about this many forward passes (for the unitless weights).
BACKWARD_FACTOR = 3


@dataclass
class Work:
    """One cell's own work (what earlier cells computed is theirs), in image passes."""

    case_id: str
    attack: int = 0
    queries: int = 0
    codec: int = 0
    model: int = 0
    #: The attack of each restart as images x steps x restarts x EOT, or "shared" when an earlier cell ran it.
    attack_text: str = "–"
    #: What the attacker's gradient passes through: (path, codec, quality, rounds); for the warm-up.
    target: tuple = field(default=(), repr=False)
    codecs: dict[CodecRef, int] = field(default_factory=dict, repr=False)

    @property
    def weight(self) -> float:
        return BACKWARD_FACTOR * self.attack + self.queries + self.codec + self.model


def workload(engine: Engine, cases: list[Case]) -> list[Work]:
    """Each case's own work, in the order given (shared work counts at its first cell)."""
    seen: set = set()
    out = []
    n = len(engine.labels)
    for case in cases:
        work = Work(case.id)
        for part in case.parts or (case,):
            _add(engine, part, n, work, seen)
        out.append(work)
    return out


def _add(engine: Engine, case: Case, n: int, work: Work, seen: set) -> None:
    ref = None if case.codec == "identity" else CodecRef(case.codec, case.quality)
    for source in engine.source_keys(case):
        if isinstance(source, AdvKey):
            spec = source.spec
            path = source.path
            work.target = ("bare", "identity", None, 1) if path == "bare" else (path, case.codec, case.quality,
                                                                                 case.rounds)
            if source in seen:
                work.attack_text = "shared (computed by an earlier cell)"
            else:
                seen.add(source)
                restarts = case.attack.restarts
                if spec.info.gradient_free:
                    work.queries += n * spec.steps
                    work.attack_text = f"{n} images x {spec.steps} queries x {restarts} restarts"
                else:
                    work.attack += n * spec.steps * spec.eot
                    eot = f" x {spec.eot} EOT" if spec.eot != 1 else ""
                    work.attack_text = f"{n} images x {spec.steps} steps x {restarts} restarts{eot}"
        if ref is not None:
            for k in range(1, case.rounds + 1):
                if ("round", source, ref, k) not in seen:
                    seen.add(("round", source, ref, k))
                    work.codec += n
                    work.codecs[ref] = work.codecs.get(ref, 0) + n
        if ("outcome", source, ref, case.rounds) not in seen:
            seen.add(("outcome", source, ref, case.rounds))
            work.model += n


def weights(engine: Engine, cases: list[Case]) -> dict[str, float]:
    """A unitless cost per case id (image passes, a backward pass counted as :data:`BACKWARD_FACTOR`)."""
    return {w.case_id: w.weight for w in workload(engine, cases)}


@dataclass
class Timing:
    """Seconds per image measured on one batch: classify, gradient per attack target, round trip per codec."""

    predict: float
    gradient: dict[tuple, float]
    forward: dict[tuple, float]
    codec: dict[CodecRef, float]
    batch: int


def _timed(fn, repeat: int = 2) -> float:
    """The faster of ``repeat`` runs (the first pays for lazy initialisation)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(engine: Engine, works: list[Work]) -> Timing:
    """The warm-up: one batch of each distinct kind of pass the work needs, timed."""
    b = min(engine.batch_sizes["attack"], len(engine.labels))
    x = engine.dataset.pixels(0, b).to(engine.device)
    y = engine.labels[:b].to(engine.device)
    with torch.inference_mode():
        predict = _timed(lambda: engine.model(x).argmax(1)) / b
    gradient, forward, codec = {}, {}, {}
    for w in works:
        if w.target and w.attack and w.target not in gradient:
            target = engine.target(*w.target)

            def step(target=target) -> None:
                xb = x.clone().requires_grad_(True)
                loss = F.cross_entropy(target(xb), y)
                torch.autograd.grad(loss, xb)

            gradient[w.target] = _timed(step) / b
        if w.target and w.queries and w.target not in forward:
            target = engine.target(*w.target)
            with torch.no_grad():
                forward[w.target] = _timed(lambda target=target: target(x)) / b
        for ref in w.codecs:
            if ref not in codec:
                c = engine.codec(ref.name, ref.quality)
                with torch.inference_mode():
                    codec[ref] = _timed(lambda c=c: c.roundtrip(x)) / b
    return Timing(predict, gradient, forward, codec, b)


def seconds(work: Work, timing: Timing) -> float:
    """Estimated seconds of one cell's own work."""
    total = work.model * timing.predict
    total += sum(n * timing.codec.get(ref, 0.0) for ref, n in work.codecs.items())
    if work.attack:
        total += work.attack * timing.gradient.get(work.target, 0.0)
    if work.queries:
        total += work.queries * timing.forward.get(work.target, 0.0)
    return total
