"""What a run's cells cost, before they run: passes of the model and the codecs per cell, and seconds.

:func:`workload` walks the cells in order with the engine's own keys, so work shared between cells
(an oblivious attack used by every defense, codec rounds, clean outcomes) is counted once, at the
first cell that needs it, as the engine computes it:

* attack passes: images x steps x restarts x EOT forward-and-backward passes through what the
  attacker sees (the bare model, or the model behind the defense's stand-in); for a gradient-free
  (query) attack, images x queries x restarts forward passes;
* codec passes: images x rounds real round trips of the codec;
* model passes: images classified.

Each attacked cell's soundness probes (:mod:`.probes`) are counted apart (:class:`Probe`), with the
engine's keys too, so a probe that several cells read (the undefended large-eps attack of an attack,
the zero-gradient check of a gradient path) counts once, at the first cell that runs it: the
zero-gradient check (one forward-and-backward pass per image and gradient path on the first 144 images; the
second stage, to 384, runs only where those show a zero gradient and is not planned), the large-eps
attack through the cell's gradient paths on the first 32 images (white-box and adaptive cells), the
large-eps attack on the bare model on the first 64 images, the stand-in check (the first 32 clean
images through the codec's rounds and its stand-in's, each classified), and with
``soundness="thorough"`` the cell's attack at twice its steps.

:func:`warm_up` times one batch of each kind of pass (the warm-up), :func:`seconds` turns a cell's
passes into an estimate and :func:`probe_seconds` its probes'. :func:`weights` gives each cell a
unitless cost (its probes included), and :func:`planned_passes` the session's passes by kind, for the
estimated time left of a running session (:class:`pytest_hac.plugin.progress_log.Pace`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from ..cells.cases import Case
from ..cells.defense import IDENTITY, Defense
from .keys import AdvKey, CodecRef, SourceKey, coded, defense_of, gradient_key, seen_by
from .probes import PROBE_IMAGES, ZERO_GRADIENT_FIRST, cell_probes

if TYPE_CHECKING:
    from .engine import Engine

#: A forward-and-backward pass costs about this many forward passes (for the unitless weights).
BACKWARD_FACTOR = 3


@dataclass
class Probe:
    """One soundness probe's own work (one key: what earlier cells or probes computed is theirs)."""

    #: "zero-gradient", "large-eps", "undefended large-eps", "stand-in" or "steps 2x".
    kind: str
    #: What its gradient (or query) passes go through: (path, defense).
    target: tuple[str, Defense]
    images: int
    attack: int = 0
    queries: int = 0
    codec: int = 0
    model: int = 0
    codecs: dict[CodecRef, int] = field(default_factory=dict, repr=False)

    @property
    def weight(self) -> float:
        return BACKWARD_FACTOR * self.attack + self.queries + self.codec + self.model


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
    #: What the attacker's gradient passes through: (path, defense); for the warm-up.
    target: tuple[str, Defense] | tuple[()] = field(default=(), repr=False)
    codecs: dict[CodecRef, int] = field(default_factory=dict, repr=False)
    #: The soundness probes this cell runs first (apart from its own work above).
    probes: list[Probe] = field(default_factory=list)

    @property
    def weight(self) -> float:
        """The cell's passes and its probes' (a backward pass counted as :data:`BACKWARD_FACTOR`)."""
        return BACKWARD_FACTOR * self.attack + self.queries + self.codec + self.model + sum(
            p.weight for p in self.probes)

    @property
    def probe_passes(self) -> int:
        """Passes through the attacked module of this cell's probes (forward-and-backward and queries)."""
        return sum(p.attack + p.queries for p in self.probes)


def workload(engine: Engine, cases: list[Case]) -> list[Work]:
    """Each case's own work and its probes', in the order given (shared work counts at its first cell)."""
    seen: set = set()
    out = []
    n = len(engine.labels)
    for case in cases:
        work = Work(case.id)
        for part in case.parts or (case,):
            _add(engine, part, n, work, seen)
            _probes(engine, part, work, seen)
        out.append(work)
    return out


def _attack(key: AdvKey, acc: Work | Probe) -> None:
    spec = key.spec
    if spec.info.gradient_free:
        acc.queries += key.n * spec.steps
    else:
        acc.attack += key.n * spec.steps * spec.eot


def _pipeline(source: SourceKey, defense: Defense, n: int, acc: Work | Probe, seen: set) -> None:
    """The real codec's rounds and the classifier on ``source``'s ``n`` images, as :meth:`Engine.outcome` runs."""
    ref, rounds = coded(defense)
    if ref is not None:
        for k in range(1, rounds + 1):
            if ("round", source, ref, k) not in seen:
                seen.add(("round", source, ref, k))
                acc.codec += n
                acc.codecs[ref] = acc.codecs.get(ref, 0) + n
    if ("outcome", source, ref, rounds) not in seen:
        seen.add(("outcome", source, ref, rounds))
        acc.model += n


def _add(engine: Engine, case: Case, n: int, work: Work, seen: set) -> None:
    for source in engine.source_keys(case):
        if isinstance(source, AdvKey):
            work.target = (source.path, defense_of(source))
            if source in seen:
                work.attack_text = "shared (computed by an earlier cell)"
            else:
                seen.add(source)
                _attack(source, work)
                spec, restarts = source.spec, case.attack.restarts
                if spec.info.gradient_free:
                    work.attack_text = f"{n} images x {spec.steps} queries x {restarts} restarts"
                else:
                    eot = f" x {spec.eot} EOT" if spec.eot != 1 else ""
                    work.attack_text = f"{n} images x {spec.steps} steps x {restarts} restarts{eot}"
        _pipeline(source, case.defense, n, work, seen)


def _probe(kind: str, key: AdvKey, defense: Defense, work: Work, seen: set) -> None:
    """An attack probe: ``key``'s attack (unless computed already) and its outcome through ``defense``."""
    probe = Probe(kind, (key.path, defense_of(key)), key.n)
    if key not in seen:
        seen.add(key)
        _attack(key, probe)
    _pipeline(key, defense, key.n, probe, seen)
    if probe.weight:
        work.probes.append(probe)


def _probes(engine: Engine, case: Case, work: Work, seen: set) -> None:
    """The soundness probes :func:`.probes.measure` runs after ``case`` (:func:`.probes.cell_probes`)."""
    plan = cell_probes(engine, case)
    n = len(engine.labels)
    for path in plan.zero_gradient_paths:
        m = min(n, ZERO_GRADIENT_FIRST)
        key = gradient_key(path, case.defense, m)
        if key not in seen:
            seen.add(key)
            work.probes.append(Probe("zero-gradient", (path, seen_by(path, case.defense)), m, attack=m))
    if plan.stand_in is not None and ("stand-in", plan.stand_in) not in seen:
        seen.add(("stand-in", plan.stand_in))
        m = min(n, PROBE_IMAGES)
        ref, rounds = coded(plan.stand_in)
        # the real rounds (the stand-in's are not timed apart), each image classified through both
        probe = Probe("stand-in", ("approximate", plan.stand_in), m, codec=m * rounds, model=2 * m,
                      codecs={ref: m * rounds})
        work.probes.append(probe)
    for key in plan.large_eps:
        _probe("large-eps", key, case.defense, work, seen)
    if plan.undefended is not None:
        _probe("undefended large-eps", plan.undefended, IDENTITY, work, seen)
    for key in plan.steps_2x:
        _probe("steps 2x", key, case.defense, work, seen)


def weights(engine: Engine, cases: list[Case]) -> dict[str, float]:
    """A unitless cost per case id (image passes, a backward pass counted as :data:`BACKWARD_FACTOR`)."""
    return {w.case_id: w.weight for w in workload(engine, cases)}


@dataclass
class Timing:
    """Seconds per image measured on one batch: classify, gradient per attack target, round trip per codec."""

    predict: float
    gradient: dict[tuple[str, Defense], float]
    forward: dict[tuple[str, Defense], float]
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


def warm_up(engine: Engine, works: list[Work]) -> Timing:
    """The warm-up: one batch of each distinct kind of pass the work needs, timed."""
    b = min(engine.batch_sizes["attack"], len(engine.labels))
    x = engine.dataset.pixels(0, b).to(engine.device)
    y = engine.labels[:b].to(engine.device)
    with torch.inference_mode():
        predict = _timed(lambda: engine.model(x).argmax(1)) / b
    gradient, forward, codec = {}, {}, {}
    for w in [*works, *(p for w in works for p in w.probes)]:
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


def seconds(work: Work | Probe, timing: Timing) -> float:
    """Estimated seconds of one cell's own work (or of one probe's)."""
    total = work.model * timing.predict
    total += sum(n * timing.codec.get(ref, 0.0) for ref, n in work.codecs.items())
    if work.attack:
        total += work.attack * timing.gradient.get(work.target, 0.0)
    if work.queries:
        total += work.queries * timing.forward.get(work.target, 0.0)
    return total


def probe_seconds(work: Work, timing: Timing) -> float:
    """Estimated seconds of the soundness probes a cell runs first."""
    return sum(seconds(p, timing) for p in work.probes)


def planned_passes(works: list[Work]) -> dict[str, int]:
    """The image passes of ``works`` and their probes by kind, as :class:`.batches.Batches` counts them when they run
    (``attack:<path>``: forward and backward through a gradient path, ``query:<path>``, ``codec``, ``predict``):
    what the time left is measured against."""
    total: dict[str, int] = {}

    def add(kind: str, passes: int) -> None:
        if passes:
            total[kind] = total.get(kind, 0) + passes

    for item in [*works, *(p for w in works for p in w.probes)]:
        path = item.target[0] if item.target else "bare"
        add(f"attack:{path}", item.attack)
        add(f"query:{path}", item.queries)
        add("codec", item.codec)
        add("predict", item.model)
    return total
