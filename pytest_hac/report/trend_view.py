"""A trend as people read it: a Markdown table (cells by runs) and a PNG (one panel per threat, one line
per cell, 95% intervals shaded); and ``pytest-hac trend DIR``, which writes both."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..attacks.threats import rank
from ..errors import HacError
from ..io.files import atomic_write, safe_stem
from .plot import FAILED_COLOR, png_bytes, style
from .trend import Point, Trend, trend_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LEGEND = ("Accuracy per cell, oldest run first (the runs are listed below the table). ▼ marks a significant drop "
          "against the previous comparable run (one-sided exact McNemar test on the images both share, 5%, as the "
          "baseline gate); ° marks a run not compared (other model, data or attack; the runs table says why). "
          "*window Δ* is the change from the first to the last comparable run, in points; a *drift* is a "
          "significant window drop that no single step showed.")
DROP_GID = "hac-trend-drop"


def point_text(p: Point | None) -> str:
    """One cell in one run as the table shows it: ``0.81``, ``0.74 ▼`` (a significant step) or ``0.80 °``."""
    if p is None:
        return "–"
    apart = p.why is not None or (p.step is not None and not p.step.comparable)  # e.g. no image in common
    mark = " °" if apart else " ▼" if p.dropped else ""
    return f"{p.result.accuracy:.2f}{mark}"


def window_text(trend: Trend, case_id: str) -> tuple[str, str]:
    """A cell's *window Δ* and *finding* columns (``**drift**`` in Markdown's bold)."""
    found = next((f for f in trend.findings if f.case_id == case_id), None)
    chain = [p for p in trend.cells[case_id] if p is not None and p.why is None]
    if len(chain) < 2:
        return "–", ""
    delta = 100 * (chain[-1].result.accuracy - chain[0].result.accuracy)
    if found is None:
        return f"{delta:+.1f}", ""
    return f"{-found.points:+.1f} (p={found.comparison.p_drop:.2g})", "**drift**" if found.kind == "drift" else "drop"


def trend_table(trend: Trend, *, title: str = "#", plot_name: str | None = None) -> str:
    """The trend as Markdown: the cells-by-runs table, the findings, the plot (when named), and the runs
    (date, commit, branch, compared or why not)."""
    from tabulate import tabulate

    n = len(trend.entries)
    lines = [f"{title} Trend: {trend.model} over the last {n} run(s)", ""]
    if n < 2:
        return "\n".join(lines + ["Only one run in the history so far: the trend starts with the next one.", ""]
                         + [f"- {note}" for note in trend.notes]) + "\n"
    lines += [LEGEND, ""]
    rows = [[f"`{case_id}`"] + [point_text(p) for p in points] + list(window_text(trend, case_id))
            for case_id, points in trend.cells.items()]
    headers = ["cell"] + [str(i + 1) for i in range(n)] + ["window Δ", "finding"]
    lines += [tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    for finding in trend.findings:
        lines.append(f"- {finding.message(trend.labels)}")
    if not trend.findings:
        lines.append("- no cell dropped significantly over the window")
    lines += [f"- {note}" for note in trend.notes]
    if plot_name:
        lines += ["", f"![accuracy per cell across the runs]({plot_name})"]
    lines += ["", tabulate(run_rows(trend), RUN_HEADERS, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines) + "\n"


RUN_HEADERS = ["run", "date", "commit", "branch", "cells", "compared"]


def run_rows(trend: Trend) -> list[list[str]]:
    """The runs of the window, one row each (:data:`RUN_HEADERS`): date, commit, branch, compared or why not."""
    rows = []
    for i, entry in enumerate(trend.entries):
        run = entry.run
        dirty = " (uncommitted changes)" if run.get("dirty") else ""
        rows.append([str(i + 1), entry.date, (run.get("commit") or "–")[:12] + dirty, run.get("branch") or "–",
                     str(len(entry.report.results)), "not compared: " + trend.excluded[i] if i in trend.excluded
                     else "yes"])
    return rows


def trend_failures(trend: Trend, points: float) -> list[str]:
    """``--hac-fail-drop``: a line per step into the newest run or drift larger than ``points`` (none: the run
    passes), each naming its cell, Δ and p."""
    return [f"{f.message(trend.labels)}, more than the allowed {points:g} points" for f in trend.failures(points)]


def figure(trend: Trend) -> Figure | None:
    """Accuracy against run, one panel per threat, one line per cell (through its compared runs) with its 95%
    interval shaded; significant drops ringed in red, runs not compared in grey. None when there is nothing to
    draw."""
    from matplotlib.figure import Figure

    by_threat: dict[str, list[str]] = {}
    for case_id, points in trend.cells.items():
        first = next(p for p in points if p is not None)
        by_threat.setdefault(first.result.threat, []).append(case_id)
    if not by_threat or len(trend.entries) < 2:
        return None
    threats = sorted(by_threat, key=lambda t: (rank(t), t))
    fig = Figure(figsize=(6.5, 3.2 * len(threats)), layout="constrained")
    axes = fig.subplots(len(threats), 1, squeeze=False)[:, 0]
    for ax, threat in zip(axes, threats):
        for index, case_id in enumerate(by_threat[threat]):
            every = [p for p in trend.cells[case_id] if p is not None]
            points = [p for p in every if p.why is None]  # the line joins compared runs only
            look = style(index)
            x = [p.run + 1 for p in points]
            label = case_id + (" (drift)" if any(f.case_id == case_id for f in trend.drifts()) else "")
            ax.plot(x, [p.result.accuracy for p in points], label=label, markerfacecolor="none", **look)
            apart = [p for p in every if p.why is not None]
            if apart:
                ax.scatter([p.run + 1 for p in apart], [p.result.accuracy for p in apart], marker=look["marker"],
                           facecolors="none", edgecolors="#999999", zorder=4)
            ax.fill_between(x, [p.result.ci_low for p in points], [p.result.ci_high for p in points],
                            color=look["color"], alpha=0.12, linewidth=0)
            drops = [p for p in points if p.dropped]
            if drops:
                ax.scatter([p.run + 1 for p in drops], [p.result.accuracy for p in drops], s=90, marker="o",
                           facecolors="none", edgecolors=FAILED_COLOR, linewidths=1.5, gid=DROP_GID, zorder=5)
        ax.set_title(threat)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0.5, len(trend.entries) + 0.5)
        ax.set_xticks(range(1, len(trend.entries) + 1))  # runs are whole numbers, not 0.5, 1.5, 2.5
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower left")
    axes[-1].set_xlabel("run (oldest first; see the trend table) · red ring: significant drop · grey: not compared")
    return fig


def trend_png(trend: Trend) -> bytes | None:
    """:func:`figure` as PNG bytes (what the file and the HTML page hold); None when there is nothing to draw."""
    fig = figure(trend)
    return None if fig is None else png_bytes(fig)


def write_trend_plot(trend: Trend, path: Path) -> bool:
    """Save :func:`figure` as a PNG atomically; False when there was nothing to draw."""
    data = trend_png(trend)
    if data is None:
        return False
    atomic_write(path, data)
    return True


def trend_command(directory: Path, *, last: int, fail: float | None, model: str | None, output: Path) -> int:
    """``pytest-hac trend DIR``: print the table, write ``<model>.trend.md`` and ``.png`` under ``output``;
    exit 1 under ``fail`` on a step into the newest run or a drift larger than ``fail`` points, 2 on a usage error."""
    try:
        if last < 2:
            raise HacError(f"--last must be at least 2; got {last}")
        trend = trend_of(directory, last=last, model=model)
        if not trend.entries:
            raise HacError(f"no run{' of model ' + repr(model) if model else ''} in history folder {directory}")
    except HacError as exc:
        print(f"pytest-hac: {exc}", file=sys.stderr)
        return 2
    stem = safe_stem(trend.model) + ".trend"
    plotted = write_trend_plot(trend, output / f"{stem}.png")
    text = trend_table(trend, plot_name=f"{stem}.png" if plotted else None)
    atomic_write(output / f"{stem}.md", text)
    print(text)
    print(f"trend written to {output / (stem + '.md')}" + (f" and {output / (stem + '.png')}" if plotted else ""))
    failing = [] if fail is None else trend_failures(trend, fail)
    for line in failing:
        print(f"pytest-hac: FAILED: {line}", file=sys.stderr)
    return 1 if failing else 0
