"""Trends over the history: per cell, accuracy across the last K runs, significant steps, and drifts.

Every comparison is the baseline gate's (:func:`pytest_hac.core.judge.comparison.compare`: same cell id and
attack, one-sided exact McNemar test on the images both runs share). A run is compared only with
runs of the same model and data as the newest run of the window; a cell only with runs that used
the same attack. A *step* is a significant drop against the previous comparable run; a *drift* is
a significant drop from the first to the last comparable run of the window that no step showed.
``--hac-fail-drop`` and ``trend --fail`` fail on both (:meth:`Trend.failures`): a step into the newest
run (the night it happens) and a drift over the window.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..attacks import describe_attack
from ..core.judge.comparison import Comparison, compare
from ..core.judge.result import Result
from ..core.judge.stats import SIGNIFICANCE_LEVEL
from .history import HistoryEntry, load_history
from .schema import Report

#: Runs a trend looks back over unless told otherwise.
DEFAULT_LAST = 30


@dataclass(frozen=True)
class Point:
    """One cell in one run: its result, and its step from the previous comparable run."""

    run: int
    result: Result
    #: Why this point is not compared with the others (None when it is).
    why: str | None = None
    step: Comparison | None = None

    @property
    def dropped(self) -> bool:
        """A significant drop against the previous comparable run."""
        return self.step is not None and self.step.comparable and self.step.p_drop < SIGNIFICANCE_LEVEL


@dataclass(frozen=True)
class Drop:
    """A significant drop of one cell from the first to the last comparable run of the window.

    ``kind`` is ``drift`` when no single step between them was significant (only the window shows
    it), ``drop`` when a step was (that run is marked in the table too). :meth:`Trend.failures` also
    makes ``step`` findings: the newest run's significant drop against the previous comparable run.
    """

    case_id: str
    first: int
    last: int
    comparison: Comparison
    kind: str

    @property
    def points(self) -> float:
        """The drop in percentage points (positive)."""
        return -self.comparison.delta_points

    def beyond(self, points: float) -> bool:
        """Larger than ``points`` percentage points (3 images of 100 are 3 points, not 3.0000000000000027)."""
        return round(self.points, 9) > points

    def message(self, labels: list[str]) -> str:
        c = self.comparison
        tail = {"drift": "no single step was significant", "drop": "a step between them was significant",
                "step": "a significant drop against the previous comparable run"}[self.kind]
        return (f"{self.kind} `{self.case_id}`: {c.baseline:.3f} -> {c.current:.3f} ({-self.points:+.1f} points on "
                f"{c.compared} shared images, one-sided paired p={c.p_drop:.3g}) from run {self.first + 1} "
                f"({labels[self.first]}) to run {self.last + 1} ({labels[self.last]}); {tail}")


@dataclass
class Trend:
    """The window of runs, per cell its points, the runs not compared (and why), and the findings."""

    entries: list[HistoryEntry]
    cells: dict[str, list[Point | None]] = field(default_factory=dict)
    excluded: dict[int, str] = field(default_factory=dict)
    findings: list[Drop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    @property
    def model(self) -> str:
        return self.entries[-1].report.model if self.entries else ""

    def drifts(self, points: float = 0.0) -> list[Drop]:
        """The drifts larger than ``points`` percentage points."""
        return [f for f in self.findings if f.kind == "drift" and f.beyond(points)]

    def steps(self, points: float = 0.0) -> list[Drop]:
        """The newest run's significant drops against each cell's previous comparable run, larger than ``points``
        percentage points: a regression the night it happens."""
        newest = len(self.entries) - 1
        out = []
        for case_id, points_ in self.cells.items():
            chain = [p for p in points_ if p is not None and p.why is None]
            if len(chain) >= 2 and chain[-1].run == newest and chain[-1].dropped:
                finding = Drop(case_id, chain[-2].run, newest, chain[-1].step, "step")
                if finding.beyond(points):
                    out.append(finding)
        return out

    def failures(self, points: float = 0.0) -> list[Drop]:
        """What ``--hac-fail-drop=points`` and ``trend --fail`` fail on: the newest run's steps and the window's
        drifts larger than ``points`` percentage points."""
        return self.steps(points) + self.drifts(points)


def _why_excluded(report: Report, reference: Report) -> str | None:
    if report.model != reference.model:
        return f"other model {report.model!r} (newest run: {reference.model!r})"
    if report.dataset != reference.dataset:
        return f"other data {report.dataset!r} (newest run: {reference.dataset!r})"
    return None


def build_trend(entries: list[HistoryEntry], last: int = DEFAULT_LAST) -> Trend:
    """The trend of the last ``last`` of ``entries`` (oldest first). Pure: reads nothing, writes nothing."""
    if last < 2:
        raise ValueError("a trend needs at least 2 runs (--last >= 2)")
    window = list(entries)[-last:]
    trend = Trend(window)
    if not window:
        return trend
    reference = window[-1].report
    for i, entry in enumerate(window):
        why = _why_excluded(entry.report, reference)
        if why is not None:
            trend.excluded[i] = why
    order: dict[str, None] = {}
    for entry in reversed(window):  # the newest run's cells first, in its order; then cells it no longer has
        order.update((r.case_id, None) for r in sorted(entry.report.results, key=lambda r: r.case_id))
    for case_id in order:
        trend.cells[case_id] = _points(trend, case_id)
        finding = _finding(case_id, trend.cells[case_id])
        if finding is not None:
            trend.findings.append(finding)
    return trend


def _points(trend: Trend, case_id: str) -> list[Point | None]:
    """One cell's points across the window: compared with the newest comparable run's attack, step by step."""
    found = [next((r for r in e.report.results if r.case_id == case_id), None) for e in trend.entries]
    comparable = [i for i, r in enumerate(found) if r is not None and i not in trend.excluded]
    attack = found[comparable[-1]].spec if comparable else None
    points: list[Point | None] = []
    previous: Result | None = None
    for i, result in enumerate(found):
        if result is None:
            points.append(None)
        elif i in trend.excluded:
            points.append(Point(i, result, why=trend.excluded[i]))
        elif result.spec != attack:
            points.append(Point(i, result, why=f"the attack differs: {describe_attack(result.spec)}, "
                                               f"newest run {describe_attack(attack)}"))
        else:
            step = None if previous is None else compare(result, [previous])
            points.append(Point(i, result, step=step))
            previous = result
    return points


def _finding(case_id: str, points: list[Point | None]) -> Drop | None:
    chain = [p for p in points if p is not None and p.why is None]
    if len(chain) < 2:
        return None
    first, last = chain[0], chain[-1]
    window = compare(last.result, [first.result])
    if window is None or not window.comparable or window.p_drop >= SIGNIFICANCE_LEVEL:
        return None
    stepped = any(p.dropped for p in chain[1:])
    return Drop(case_id, first.run, last.run, window, "drop" if stepped else "drift")


def trend_of(history_dir: Path, current: Report | None = None, *, last: int = DEFAULT_LAST,
             model: str | None = None) -> Trend:
    """The trend of the history in ``history_dir`` (of ``current``'s model, with ``current`` as its newest
    run when given: an entry holding the same report is not counted twice)."""
    model = current.model if current is not None else model
    if current is not None and not Path(history_dir).is_dir():
        entries, notes = [], []
    else:
        entries, notes = load_history(history_dir, model)
    if model is None and entries:  # the CLI without --model: the newest run's model
        newest = entries[-1].report.model
        left = sum(1 for e in entries if e.report.model != newest)
        entries = [e for e in entries if e.report.model == newest]
        if left:
            notes.append(f"{left} run(s) of other models left out (--model NAME picks one)")
    if current is not None:
        mine = current.to_dict()
        entries = [e for e in entries if e.report.to_dict() != mine]
        entries.append(HistoryEntry(Path("(this run)"), current, {"date": "this run"}))
    trend = build_trend(entries, last)
    trend.notes += notes
    return trend
