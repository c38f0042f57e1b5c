"""Soundness probes: measurements the engine makes while a cell runs, for :mod:`..judge.soundness`.

An attacked cell's :class:`~..judge.diagnostics.Diagnostics`: correct counts per restart and per gradient
path, the zero-gradient share (per path, on the first 144 images, or 384 where those show one), the attack at
:data:`PROBE_EPS` through each of the cell's gradient paths (white-box and adaptive cells, on the first 32
images) and against the bare model (the first 64), the codec's stand-in against its decoded images (cells
whose attack follows the stand-in, on the first 32 clean images) and, with ``soundness="thorough"``, the cell
at twice its steps. For L2 attacks the probe's budget is ``PROBE_EPS * sqrt(C*H*W)``. The large-eps attacks
stop on an image once it is broken (``AdvKey.until_broken``): the question is answered.

Every probe is computed once and reused (stored like any attack); probes count in the
engine's ``counters.probe_batches`` and ``seconds["probe"]``, apart from the cells' work.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ...attacks import AttackSpec, make_spec
from ..cells.cases import Case
from ..cells.defense import IDENTITY, Defense, follows_stand_in, gradient_paths
from ..judge.diagnostics import Diagnostics, LargeEpsProbe, MoreSteps, StandIn, ZeroGradient
from .keys import AdvKey, SourceKey
from .outcome import Outcome, worst_of

#: An L-inf budget that breaks every classifier whose gradients carry information (Carlini et al., 2019,
#: "On evaluating adversarial robustness"), on a subset: a probe, not a cell. Also the undefended
#: model's sanity check, whatever its data (small images of simple digits resist 16/255; their usual
#: budget is 0.3 = 77/255).
PROBE_EPS = 64 / 255
PROBE_IMAGES = 32
#: The zero-gradient check estimates a share (flagged above 1%, ``judge.soundness.ZERO_GRADIENT_SHARE``) in two
#: stages, stopping early for futility as Simon's (1989) two-stage design does: the first 144 images on each of the
#: cell's paths, and only where one of them shows a zero or non-finite gradient, the share on 384. Against one stage
#: of 256 images it flags a 1.5% to 10% share as often (within 0.002), a 0.2% to 0.5% share less often, and costs a
#: healthy path 144 gradient passes instead of 256 (``tests/unit/test_zero_gradient_design.py`` computes both
#: exactly). One gradient pass per image and path stays a few percent of a run's attacks however many it evaluates.
ZERO_GRADIENT_FIRST = 144
ZERO_GRADIENT_IMAGES = 384
UNDEFENDED_IMAGES = 64


class ProbeEngine(Protocol):
    """What the probes ask of the engine that runs them (:class:`~.engine.Engine` is one), and nothing more:
    no store, addresses, batches or seeds. Probes name work by keys; the engine computes it once and counts it."""

    @property
    def soundness(self) -> str:
        """``"fail"``, ``"warn"`` or ``"thorough"`` (the last adds the steps_2x probe to every attacked cell)."""

    @property
    def n_images(self) -> int:
        """Images in the data set."""

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one image, (C, H, W)."""

    def source_keys(self, case: Case, *, steps: int | None = None) -> list[SourceKey]:
        """The sources of ``case`` (one per gradient path and restart), at ``steps`` if given."""

    def adversarial_key(self, path: str, defense: Defense, spec: AttackSpec, *, restart: int = 0,
                        n: int | None = None, until_broken: bool = False) -> AdvKey:
        """The adversarial set of ``spec`` through ``path`` of ``defense`` on the first ``n`` images (default all);
        ``until_broken``: the attack stops on an image once the pipeline it checks gets the image wrong."""

    def outcome(self, source: SourceKey, defense: Defense) -> Outcome:
        """``source`` through the real ``defense`` and the classifier, per image; computed once."""

    def cascade(self, case: Case, keys: list[SourceKey]) -> list[Outcome]:
        """The outcomes of ``case``'s sets ``keys`` in order, each attacking only the images earlier sets left
        correct (``worst_of`` over them is that over full sets)."""

    def zero_gradients(self, path: str, defense: Defense, n: int | None = None, start: int = 0) -> Tensor:
        """Per image of ``start:n`` (default all): is the input gradient at the clean image through ``path`` of
        ``defense`` all zero or not finite?"""

    def stand_in(self, defense: Defense, n: int) -> tuple[Tensor, Tensor]:
        """Per image of the first ``n`` clean images: the stand-in's distance from the decoded image, relative to
        the decoded image's from the input, and whether predictions through the two differ; computed once."""

    def stochastic(self, codec: str, quality: int | None) -> bool:
        """Whether the codec declares itself random."""

    def probing(self) -> AbstractContextManager[None]:
        """Count the work inside as soundness probes, apart from the cells' own."""


@dataclass(frozen=True)
class CellProbes:
    """The probes an attacked cell runs, named by the engine's keys (empty: not run). :func:`measure` computes
    them and :mod:`.workload` counts them: one decision of which probes a cell runs."""

    #: Gradient paths whose zero-gradient flags are read (every path of a gradient attack's cell).
    zero_gradient_paths: tuple[str, ...] = ()
    #: The attack at :data:`PROBE_EPS` through each gradient path, on the first :data:`PROBE_IMAGES` images.
    large_eps: tuple[AdvKey, ...] = ()
    #: The attack at :data:`PROBE_EPS` against the bare model, on the first :data:`UNDEFENDED_IMAGES` images.
    undefended: AdvKey | None = None
    #: The cell's sources at twice its steps (``soundness="thorough"``).
    steps_2x: tuple[SourceKey, ...] = ()
    #: The defense whose stand-in is measured against its decoded images on the first :data:`PROBE_IMAGES` clean
    #: images (informed cells with a path that follows the stand-in, on a deterministic codec).
    stand_in: Defense | None = None


def cell_probes(engine: ProbeEngine, case: Case) -> CellProbes:
    """The probes :func:`measure` runs after the attacked ``case`` (none for clean and worst cells)."""
    spec = case.attack
    if spec is None or not case.threat.attacked:
        return CellProbes()
    paths = gradient_paths(case.threat, case.codec, case.rounds)
    zero, through, bare, more, stand_in = (), (), None, (), None
    if any(map(follows_stand_in, paths)) and not engine.stochastic(case.codec, case.quality):
        stand_in = case.defense
    if not spec.info.gradient_free:
        zero = paths
        if not spec.min_norm:
            if case.threat.info.informed:
                probe = probe_spec(engine, spec, PROBE_EPS, eot=spec.eot)
                m = min(engine.n_images, PROBE_IMAGES)
                # a random codec's decode differs from draw to draw: "broken" is answered on the cell's own decode
                stop = not engine.stochastic(case.codec, case.quality)
                through = tuple(engine.adversarial_key(path, case.defense, probe, n=m, until_broken=stop)
                                for path in paths)
            bare = engine.adversarial_key("bare", IDENTITY, probe_spec(engine, spec, PROBE_EPS),
                                          n=min(engine.n_images, UNDEFENDED_IMAGES), until_broken=True)
    if (engine.soundness == "thorough" or case.thorough) and spec.info.takes_steps:
        more = tuple(engine.source_keys(case, steps=2 * spec.steps))
    return CellProbes(zero, through, bare, more, stand_in)


def measure(engine: ProbeEngine, case: Case, outcomes: list[Outcome]) -> Diagnostics:
    """The diagnostics of an attacked cell (see the module docstring)."""
    spec = case.attack
    keys = engine.source_keys(case)
    restarts = tuple(_count(keys, outcomes, lambda k, i=i: k.restart == i) for i in range(spec.restarts))
    paths = gradient_paths(case.threat, case.codec, case.rounds)
    per_path = {p: _count(keys, outcomes, lambda k, p=p: k.path == p) for p in paths} if len(paths) > 1 else None
    plan = cell_probes(engine, case)
    zero = through = bare = more = stand_in = None
    with engine.probing():
        if plan.stand_in is not None:
            stand_in = stand_in_fidelity(engine, plan.stand_in)
        if plan.zero_gradient_paths:
            zero = zero_gradients(engine, case, plan.zero_gradient_paths)
        if plan.large_eps:
            through = large_eps(engine, case, plan.large_eps)
        if plan.undefended is not None:
            bare = undefended_large_eps(engine, plan.undefended)
        if plan.steps_2x:
            more = steps_2x(engine, case, plan.steps_2x)
    return Diagnostics(restarts=restarts, paths=per_path, zero_gradient=zero, large_eps=through,
                       undefended_large_eps=bare, steps_2x=more, stand_in=stand_in)


def _count(keys: list[AdvKey], outcomes: list[Outcome], which: Callable[[AdvKey], bool]) -> int:
    """Images the pipeline gets right on every source ``which(key)`` selects (per-image worst case)."""
    return int(worst_of([o for k, o in zip(keys, outcomes) if which(k)]).correct.sum())


def zero_gradients(engine: ProbeEngine, case: Case, paths: tuple[str, ...]) -> ZeroGradient:
    """Images whose input gradient of the attack loss at the clean image is all zero or not finite, on every
    gradient path of the cell (``paths``) and on each one (a working path does not vouch for a masked one): on the
    first :data:`ZERO_GRADIENT_FIRST` images, and on :data:`ZERO_GRADIENT_IMAGES` where one of those had one."""
    first = min(engine.n_images, ZERO_GRADIENT_FIRST)
    per_path = {path: engine.zero_gradients(path, case.defense, first) for path in paths}
    n = min(engine.n_images, ZERO_GRADIENT_IMAGES)
    if n > first and any(bool(mine.any()) for mine in per_path.values()):
        per_path = {path: torch.cat([mine, engine.zero_gradients(path, case.defense, n, start=first)])
                    for path, mine in per_path.items()}
    bad = None
    for mine in per_path.values():
        bad = mine if bad is None else bad & mine
    counts = {path: int(mine.sum()) for path, mine in per_path.items()} if len(paths) > 1 else None
    return ZeroGradient(int(bad.sum()), len(bad), counts)


def stand_in_fidelity(engine: ProbeEngine, defense: Defense) -> StandIn:
    """The codec's stand-in against its decoded images on the first :data:`PROBE_IMAGES` clean images."""
    n = min(engine.n_images, PROBE_IMAGES)
    relative, differ = engine.stand_in(defense, n)
    return StandIn(round(float(relative.median()), 4), round(float(relative.max()), 4), int(differ.sum()), n,
                   defense.rounds)


def probe_spec(engine: ProbeEngine, spec: AttackSpec, linf_eps: float, *, eot: int = 1) -> AttackSpec:
    """``spec``'s attack (name, norm, steps; default alpha) at max(its eps, ``linf_eps``).

    For L2 the budget is ``linf_eps * sqrt(C*H*W)``: the smallest L2 ball that holds the L-inf ball.
    """
    eps = linf_eps if spec.norm == "Linf" else linf_eps * math.sqrt(math.prod(engine.image_shape))
    return make_spec(spec.name, max(spec.eps, eps), steps=spec.steps if spec.info.takes_steps else None,
                     norm=spec.norm, eot=eot)


def large_eps(engine: ProbeEngine, case: Case, keys: tuple[AdvKey, ...]) -> LargeEpsProbe:
    """The cell's attack at a huge eps through the same gradient paths (``keys``, one per path), judged by the
    real pipeline (per image, the worst case over the paths, as in the cell)."""
    outcomes = [engine.outcome(key, case.defense) for key in keys]
    per_path = {key.path: int(o.correct.sum()) for key, o in zip(keys, outcomes)} if len(keys) > 1 else None
    return LargeEpsProbe(keys[0].spec.eps, int(worst_of(outcomes).correct.sum()), keys[0].n, per_path)


def undefended_large_eps(engine: ProbeEngine, key: AdvKey) -> LargeEpsProbe:
    """The cell's attack at a large eps against the bare model (``key``): it must break it."""
    outcome = engine.outcome(key, IDENTITY)
    return LargeEpsProbe(key.spec.eps, int(outcome.correct.sum()), key.n)


def steps_2x(engine: ProbeEngine, case: Case, keys: tuple[SourceKey, ...]) -> MoreSteps:
    """The cell again with twice the steps (``keys``: all restarts and paths, as a cascade like the cell's)."""
    outcomes = engine.cascade(case, list(keys))
    return MoreSteps(keys[0].spec.steps, tuple(worst_of(outcomes).correct.tolist()))
