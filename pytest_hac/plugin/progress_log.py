"""Progress in logs: where the live status line does not show (CI, xdist, ``-q``, not a terminal), a long run
prints one line at most every ``--hac-progress=SECONDS`` (30 by default; ``off``: never).

A line says the cells done of the total, the current cell (and its stage), images per second and an
estimated time left, through pytest's terminal reporter (``write_line``: on its own line, after pytest's
dots, never in the middle of them). Nothing is printed before the first interval has passed, so short
runs log exactly as before.

The time left is :class:`Pace`'s in the process that runs the cells: the passes the plan still needs, by
kind, at the seconds per pass this run measured (:class:`Eta` holds it and counts the cells done). An xdist
controller, which runs nothing, scales the time spent so far by the work still to do over the work done,
with each cell weighted by its planned passes (:func:`pytest_hac.core.engine.workload.weights`: an attack counts
its steps, shared work counts once; without weights each cell counts the same). In one process the
engine's per-batch callback drives the lines. On an xdist controller
every event xdist forwards from a worker (a test's start, its reports, its end) may write one: the workers
say on their reports which cell starts, how many cells the run has and, once loaded, each cell's planned
cost (:class:`CellStarts`), so the controller's lines name the cells running now and estimate the time left
from the first finished cell on. No thread prints: a line waits for the next event (while every worker is
deep in one long cell, none comes).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ..formats import duration
from .cells import is_cell, take_properties

#: Seconds per pass of one kind in units of another's, for a kind not measured yet (a backward pass costs about two
#: forward passes; a query and a codec round trip about one forward pass).
RELATIVE = {"attack": 3.0, "query": 1.0, "codec": 1.0, "predict": 1.0}


class Pace:
    """Time left from the plan and the measured rates: the session's planned image passes by kind
    (:func:`pytest_hac.core.engine.workload.planned_passes`) minus those done, each kind at the seconds per pass this
    run measured for it (:attr:`pytest_hac.core.engine.batches.Batches.passes`, probes included), scaled by the share
    of wall time the passes take (reports, verdicts and bookkeeping are the rest).

    A kind not measured yet borrows a measured kind's rate (:data:`RELATIVE`). Unlike a ratio of cells done,
    it needs no cell to have finished, is not thrown by a first cell that pays the warm-up, and counts work
    where it runs (a verdict evaluating a cell it depends on, a probe), not where the plan put it.

    A finished cell's planned passes count as done even where none ran (its outcomes came from
    ``--hac-cache``): what is done of a kind is the larger of the passes run and those of the finished cells.

    Args:
        planned: per selected cell id, the image passes by kind it and its probes need.
        passes: the passes done so far by kind (``Batches.passes``).
        seconds: their seconds by kind (``Batches.pass_seconds``).
        clock: seconds, monotonic.
    """

    def __init__(self, planned: dict[str, dict[str, float]], passes: dict[str, float], seconds: dict[str, float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cells = planned
        self.planned: dict[str, float] = {}
        for kinds in planned.values():
            for kind, n in kinds.items():
                self.planned[kind] = self.planned.get(kind, 0.0) + n
        self.passes = passes
        self.seconds = seconds
        self.clock = clock
        self.started = clock()
        self.finished: dict[str, float] = {}
        #: What had been done before this session's estimate started (nothing, unless created late).
        self._before = (dict(passes), sum(seconds.values()))

    def finish(self, cell: str) -> None:
        """``cell`` finished: its planned passes are done, whether they ran or came from a cache."""
        for kind, n in self.cells.pop(cell, {}).items():
            self.finished[kind] = self.finished.get(kind, 0.0) + n

    def rate(self, kind: str) -> float | None:
        """Seconds per pass of ``kind`` (``attack:<path>``, ``query:<path>``, ``codec``, ``predict``) measured so
        far, else borrowed from a measured kind (the same family first); None before any."""
        if self.passes.get(kind):
            return self.seconds.get(kind, 0.0) / self.passes[kind]
        family = kind.split(":")[0]
        measured = [(k, self.seconds.get(k, 0.0) / n) for k, n in self.passes.items() if n]
        if not measured:
            return None
        same = [m for m in measured if m[0].split(":")[0] == family]
        k, rate = max(same or measured, key=lambda m: self.passes[m[0]])
        return rate * RELATIVE.get(family, 1.0) / RELATIVE.get(k.split(":")[0], 1.0)

    def left(self) -> float | None:
        """Seconds left, or None before any pass was measured."""
        work = 0.0
        for kind, planned in self.planned.items():
            ran = self.passes.get(kind, 0.0) - self._before[0].get(kind, 0.0)
            rest = max(0.0, planned - max(ran, self.finished.get(kind, 0.0)))
            if rest:
                rate = self.rate(kind)
                if rate is None:
                    return None
                work += rest * rate
        spent = sum(self.seconds.values()) - self._before[1]
        wall = self.clock() - self.started
        overhead = wall / spent if spent > 0 and wall > spent else 1.0
        return work * min(overhead, 3.0)  # a long setup pause must not triple every later estimate


class Eta:
    """Cells done so far, and the estimated time left: the :class:`Pace`'s when the session has one, else the time
    spent so far scaled by the weighted cells still to do over those done.

    Args:
        total: the number of cells of the run.
        weights: planned cost per cell id (None: each cell costs the same).
        clock: seconds, monotonic.
        pace: the plan and the measured rates (in the process that runs the cells).
    """

    def __init__(self, total: int, weights: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic, pace: Pace | None = None) -> None:
        self.total = total
        self.weights = weights or {}
        self.clock = clock
        self.started = clock()
        self.done: list[str] = []
        self.pace = pace

    def _weight(self, cell: str) -> float:
        return self.weights.get(cell, 1.0) if self.weights else 1.0

    def finish(self, cell: str) -> None:
        self.done.append(cell)
        if self.pace is not None:
            self.pace.finish(cell)

    def left(self) -> float | None:
        """Seconds left, or None before any work finished (or when the rest costs nothing)."""
        if self.pace is not None:
            return self.pace.left()
        done = sum(self._weight(c) for c in self.done)
        if self.weights:
            rest = sum(w for c, w in self.weights.items() if c not in set(self.done))
        else:
            rest = max(0, self.total - len(self.done))
        if done <= 0:
            return None
        return (self.clock() - self.started) * rest / done

    def text(self) -> str:
        left = self.left()
        return "time left: estimating" if left is None else f"about {duration(left)} left"


class ProgressLog:
    """Writes a progress line at most every ``every`` seconds (see the module docstring).

    Args:
        write: writes one line (pytest's ``terminalreporter.write_line``, uncaptured).
        every: seconds between lines.
        eta: the run's :class:`Eta`.
        clock: seconds, monotonic.
    """

    def __init__(self, write: Callable[[str], None], every: float, eta: Eta,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.every = every
        self.eta = eta
        self.clock = clock
        self.cell = ""
        self.detail = ""
        #: Images of finished cells (an xdist controller's only measure of speed).
        self.images = 0
        #: Images per second of the engine's current stage, smoothed (in one process).
        self.rate: float | None = None
        self._last: tuple[float, int] | None = None
        self._written = clock()

    @contextmanager
    def cell_running(self, cell: str) -> Iterator[None]:
        """Around one cell's evaluation in this process."""
        self.started(cell)
        try:
            yield
        finally:
            self.finished(cell)

    def started(self, cell: str) -> None:
        self.cell, self.detail = cell, ""
        self._last = (self.clock(), 0)
        self.tick()

    def finished(self, cell: str, images: int = 0) -> None:
        self.eta.finish(cell)
        self.images += images
        self.cell, self.detail = "", ""
        self.tick()

    def update(self, stage: str, images_done: int, images_total: int) -> None:
        """The engine's per-batch callback: the stage and its measured images/s."""
        now = self.clock()
        if self._last is not None and images_done > self._last[1] and now > self._last[0]:
            rate = (images_done - self._last[1]) / (now - self._last[0])
            self.rate = rate if self.rate is None else 0.7 * self.rate + 0.3 * rate
        self._last = (now, 0 if images_done >= images_total else images_done)
        self.detail = f"{stage} {images_done}/{images_total}"
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        if self.every <= 0 or now - self._written < self.every:
            return
        self._written = now
        self.write(self.text(now))

    def text(self, now: float) -> str:
        elapsed = max(now - self.eta.started, 1e-9)
        total = max(self.eta.total, len(self.eta.done)) or "?"  # an xdist controller learns it from the reports
        current = f" · now {self.cell}" + (f" ({self.detail})" if self.detail else "") if self.cell else ""
        rate = self.rate if self.rate is not None else self.images / elapsed if self.images else None
        speed = "" if rate is None else f" · {rate:.1f} img/s"
        return f"pytest-hac: {len(self.eta.done)}/{total} cells done{current}{speed} · {self.eta.text()}"


def _writer(config) -> Callable[[str], None] | None:
    """pytest's terminal reporter's ``write_line``, outside output capturing (a test may be running)."""
    from contextlib import nullcontext

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")
    uncaptured = capman.global_and_fixture_disabled if capman is not None else nullcontext

    def write(line: str) -> None:
        try:
            with uncaptured():
                current = getattr(reporter, "currentfspath", None)
                if getattr(reporter, "_tw", None) is not None and reporter._tw.width_of_current_line:
                    reporter._tw.line()  # after pytest's dots (-q): write_line's ensure_newline misses them
                reporter.currentfspath = None  # the dots' line is ended: no blank line before ours
                reporter.write_line(line)
                reporter.currentfspath = current  # the next dots go on below, not under the file's name again
        except (OSError, ValueError):  # a closed or broken terminal must never fail a test
            pass

    return write


def progress_log(config, total: int, every: float, eta: Callable[[], Eta]) -> ProgressLog | None:
    """The in-process log lines, or None (turned off, or an xdist worker: its output is not shown)."""
    if every <= 0 or hasattr(config, "workerinput"):
        return None
    write = _writer(config)
    return None if write is None else ProgressLog(write, every, eta())


#: On a cell's setup report (an xdist worker's): ``{"cell": id, "selected": cells of the run}``.
START_PROPERTY = "hac_cell_start"
#: On the first call report after a worker loaded the model: the planned cost per cell id (:func:`Eta`'s weights).
WEIGHTS_PROPERTY = "hac_cell_weights"


class CellStarts:
    """On an xdist worker: says on the reports xdist forwards which cell starts (its setup report), how many
    cells the run has, and, once the engine is loaded, the planned cost per cell (on a call report).

    Args:
        selected: the run's number of selected cells.
        weights: the planned cost per cell id for a session, or None while the model is not loaded.
    """

    def __init__(self, selected: Callable[[], int], weights: Callable[[Any], dict[str, float] | None]) -> None:
        self.selected = selected
        self.weights = weights
        self.sent = False

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        if not is_cell(item) or not hasattr(item, "callspec"):
            return report
        if report.when == "setup":
            start = {"cell": item.callspec.params["hac_case"].id, "selected": self.selected()}
            report.user_properties.append((START_PROPERTY, json.dumps(start)))
        elif report.when == "call" and not self.sent:
            weights = self.weights(item.session)
            if weights is not None:
                self.sent = True
                report.user_properties.append((WEIGHTS_PROPERTY, json.dumps(weights)))
        return report


class XdistProgress:
    """On an xdist controller: the log lines, written from the events xdist forwards from every worker
    (each test's start, its setup, call and teardown reports, its end) once the interval has passed, so a
    line comes between cell reports too, never from a thread of its own. The cells running are those whose
    setup report said they start (:class:`CellStarts`) and that have not reported yet."""

    def __init__(self, config, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.log = ProgressLog(self._write, every, Eta(0, clock=clock), clock=clock)
        #: Cells running on the workers: node id -> cell id, in the order they started.
        self.running: dict[str, str] = {}
        self.seen = False

    def _write(self, line: str) -> None:
        write = _writer(self.config)  # looked up when needed: the terminal reporter comes after pytest_configure
        if write is not None:
            write(line)

    def _tick(self) -> None:
        if self.seen:  # no cell has started: this may be a session without any (print nothing)
            self.log.cell = ", ".join(dict.fromkeys(self.running.values()))
            self.log.tick()

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self._tick()

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        self._tick()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report) -> None:
        ours = dict(take_properties(report, {START_PROPERTY, WEIGHTS_PROPERTY}))
        if START_PROPERTY in ours:
            start = json.loads(ours[START_PROPERTY])
            self.seen = True
            self.log.eta.total = max(self.log.eta.total, int(start["selected"]))
            self.running[report.nodeid] = start["cell"]
        if WEIGHTS_PROPERTY in ours and not self.log.eta.weights:
            self.log.eta.weights = json.loads(ours[WEIGHTS_PROPERTY])
        props = dict(report.user_properties)
        if report.when == "call" and "hac_n" in props and report.nodeid in self.running:
            self.log.eta.finish(self.running.pop(report.nodeid))
            self.log.images += int(props["hac_n"])
        elif report.when == "teardown":  # a cell that never reported (its setup failed, it was skipped)
            self.running.pop(report.nodeid, None)
        self._tick()
