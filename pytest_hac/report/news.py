"""What a reader must see first: the run's failed cells, its regressions against the baseline, its drops over
the history and its soundness findings, each linking to where the report explains it. The Markdown report
puts these lines right under its title and the HTML page in a red box above everything else, so a bad night
reads as one before any table (both render the same :func:`news`)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.judge.stats import SIGNIFICANCE_LEVEL
from .schema import Report
from .trend import Trend


@dataclass(frozen=True)
class Item:
    """One piece of news: its kind (``failed``, ``regression``, ``trend``, ``soundness``, ``run``), the cell it
    is about (None for the run), what happened, and the report section that says more."""

    kind: str
    cell: str | None
    text: str
    section: str


#: How each kind reads in front of its text.
LABELS = {"run": "run", "failed": "FAILED", "regression": "regression", "trend": "trend drop",
          "soundness": "soundness finding"}


def news(report: Report, trend: Trend | None = None) -> list[Item]:
    """The run's bad news, worst first: the run's own state, failed cells, baseline regressions, drops over the
    history (the newest run's significant steps and the window's drifts), soundness findings. Empty: good news."""
    items = []
    if report.error:
        items.append(Item("run", None, f"ERROR: {report.error}", "summary"))
    elif not report.complete:
        items.append(Item("run", None, f"INCOMPLETE: {len(report.cells)} cells finished (interrupted, stopped early "
                                       f"or crashed)", "summary"))
    for cell in sorted((c for c in report.cells if c.failed), key=lambda c: c.case_id):
        why = "; ".join(str(r) for r in cell.reasons) or "the test failed"
        items.append(Item("failed", cell.case_id, f"{cell.result.accuracy:.3f}: {why}", "cells"))
    for cell in sorted(report.cells, key=lambda c: c.case_id):
        c = cell.comparison
        if c is not None and c.comparable and c.p_drop < SIGNIFICANCE_LEVEL:
            items.append(Item("regression", cell.case_id, f"{c.baseline:.3f} -> {c.current:.3f} ({c.delta_points:+.1f} "
                                                          f"points against the baseline, p={c.p_drop:.2g})", "cells"))
    if trend is not None:
        for finding in trend.failures():
            items.append(Item("trend", finding.case_id, finding.message(trend.labels).split(": ", 1)[1], "trend"))
    for finding in report.findings:
        items.append(Item("soundness", finding.cells[0] if finding.cells else None,
                          f"`{finding.check}`: {finding.message}", "soundness-checks"))
    return items
