"""A live status line for long runs: cells done / total, the current cell, its stage and images/s.

It appears only where someone watches a terminal: stdout is a TTY, not ``-q``, not
under xdist (workers' output is not a terminal; the controller's is xdist's), not
in CI (``$CI`` set), not with ``-s`` or live logging (tests write to the terminal
then), not with ``--hac-progress=off``. Everywhere else it writes nothing, so logs
stay as pytest writes them.

The status is appended to pytest's current line and erased with backspaces before
pytest writes again; pytest's own text and colours are never overwritten.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest

#: Seconds between redraws: often enough to look alive, rarely enough to cost nothing.
REDRAW = 0.25
#: Below this many free columns the line would only be noise.
MIN_WIDTH = 24
_STATUS = pytest.StashKey[Any]()  # the StatusLine, a progress_log.ProgressLog, or None


class StatusLine:
    """One transient status after pytest's current line, redrawn in place.

    Args:
        stream: the terminal stream (pytest's terminal writer's file).
        columns: a callable giving the free columns right of pytest's current text.
        uncaptured: a context manager factory that suspends output capturing while writing.
        total: the number of cells expected in this session.
    """

    def __init__(self, stream: Any, columns: Any, uncaptured: Any, total: int) -> None:
        self.stream = stream
        self.columns = columns
        self.uncaptured = uncaptured
        self.total = total
        self.done = 0
        self.cell = ""
        self.rate: float | None = None
        #: The estimated time left (a progress_log.Eta), when the session has one.
        self.eta: Any = None
        self._shown = 0
        self._drawn_at = 0.0
        self._last: tuple[float, int] | None = None

    @contextmanager
    def cell_running(self, cell: str) -> Iterator[None]:
        """Show the status while ``cell`` is evaluated; erase it afterwards, whatever happens."""
        self.cell = cell
        self._last = (time.perf_counter(), 0)
        self._draw("starting", force=True)
        try:
            yield
        finally:
            self.done += 1
            if self.eta is not None:
                self.eta.finish(cell)
            self._erase()

    def update(self, stage: str, images_done: int, images_total: int) -> None:
        """The engine's per-batch callback: redraw with the stage and the measured images/s."""
        now = time.perf_counter()
        if self._last is not None:
            t, n = self._last
            if images_done > n and now > t:
                batch_rate = (images_done - n) / (now - t)
                self.rate = batch_rate if self.rate is None else 0.7 * self.rate + 0.3 * batch_rate
        self._last = (now, 0 if images_done >= images_total else images_done)
        self._draw(f"{stage} {images_done}/{images_total}")

    def text(self, detail: str) -> str:
        rate = "" if self.rate is None else f" · {self.rate:.1f} img/s"
        total = max(self.total, self.done + 1)  # cells evaluated outside the marker are not counted ahead
        left = "" if self.eta is None or self.eta.left() is None else f" · {self.eta.text()}"
        return f" [hac {self.done}/{total}] {self.cell} · {detail}{rate}{left}"

    def _draw(self, detail: str, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._drawn_at < REDRAW:
            return
        self._drawn_at = now
        room = self.columns() - 1
        text = self.text(detail)[:room] if room >= MIN_WIDTH else ""
        self._write(self._erasing() + text)
        self._shown = len(text)

    def _erase(self) -> None:
        if self._shown:
            self._write(self._erasing())
            self._shown = 0

    def _erasing(self) -> str:
        n = self._shown
        return "\b" * n + " " * n + "\b" * n

    def _write(self, text: str) -> None:
        if not text:
            return
        try:
            with self.uncaptured():
                self.stream.write(text)
                self.stream.flush()
        except (OSError, ValueError):  # a closed or broken terminal must never fail a test
            pass


def status_line(config: Any, total: int, disabled: bool = False) -> StatusLine | None:
    """The session's status line, or None where it would get in the way (see the module docstring)."""
    if disabled or os.environ.get("CI") or config.getoption("verbose", 0) < 0:
        return None
    if hasattr(config, "workerinput") or config.getoption("dist", "no") != "no" or config.getoption(
            "numprocesses", None):
        return None
    if config.getoption("capture", "fd") == "no" or _live_logging(config):
        return None  # tests write to the terminal themselves: a status line would garble their output
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    writer = getattr(reporter, "_tw", None)
    stream = getattr(writer, "_file", None)
    capman = config.pluginmanager.get_plugin("capturemanager")
    uncaptured = capman.global_and_fixture_disabled if capman is not None else nullcontext
    try:
        with uncaptured():  # while a test runs, fd capturing makes stdout look like a file
            if stream is None or not stream.isatty():
                return None
    except (AttributeError, ValueError):
        return None
    return StatusLine(stream, lambda: writer.fullwidth - writer.width_of_current_line, uncaptured, total)


def _live_logging(config: Any) -> bool:
    try:
        return str(config.getini("log_cli")).lower() in {"1", "true", "yes", "on"} or bool(
            config.getoption("log_cli_level", None))
    except (ValueError, AttributeError):
        return False


@contextmanager
def live_status(config: Any, total: int, disabled: bool, engine: Any, cell: str, every: float = 0.0,
                planned: Any = dict) -> Iterator[None]:
    """Around one cell's evaluation: the session's status line (built on first use), fed by ``engine``;
    where it does not show, the log lines of :mod:`.progress_log` every ``every`` seconds.

    ``planned()`` gives each selected cell's planned image passes by kind, for the estimated time left (from
    them and the rates ``engine``'s batches measure)."""
    if _STATUS not in config.stash:
        from .progress_log import Eta, Pace, progress_log

        def eta() -> Eta:
            batches = engine.batches
            return Eta(total, pace=Pace(planned(), batches.passes, batches.pass_seconds))

        line = status_line(config, total, disabled)
        if line is not None:
            line.eta = eta()
        config.stash[_STATUS] = line or progress_log(config, total, every, eta)
    line = config.stash[_STATUS]
    if line is None:
        yield
        return
    engine.progress = line.update
    try:
        with line.cell_running(cell):
            yield
    finally:
        engine.progress = None

