"""The report's plot: accuracy against bits per pixel, one panel per threat, one legend for the figure.

:func:`figure` builds the matplotlib Figure (testable, never shown; the Agg canvas, no pyplot);
:func:`write_plot` saves it as a PNG atomically. Every series has its own colour, marker and line
style, and series that share points are dodged sideways a little, so coinciding lines (JPEG r1 and
r2 often do) stay visible; each point is labelled with its quality and drawn at its defense's clean bpp
(one x per defense in every panel); the undefended model is a dotted level line. A gated cell's threshold is a short
horizontal tick at its bpp in its series' colour; a failed cell is crossed by a red x, and the legend
says why cells failed (threshold, soundness, regression...).
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..attacks import Threat
from ..attacks.threats import rank
from ..core.judge.result import Result
from ..io.files import atomic_write
from .schema import Report
from .view import column_key, columns, computed_worst

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
#: Open markers: two different shapes drawn on the same spot both stay readable.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)))
#: Pixels per inch of the report's PNG pictures (this plot and the trend's).
PNG_DPI = 110
#: Sideways shift between series that share a point, as a fraction of the x axis.
DODGE = 0.012
FAILED_COLOR = "#d62728"
#: ``gid`` of the artists tests (and anyone post-processing the figure) can look for.
THRESHOLD_GID, FAILED_GID, UNDEFENDED_GID = "hac-threshold", "hac-failed", "hac-undefended"
WORST_TITLE = "worst case (robust accuracy)"


@dataclass
class _Point:
    result: Result
    #: Where it is drawn: the bpp of its defense's clean cell (what the matrix shows), else its own.
    bpp: float = 0.0
    thresholds: set[float] = field(default_factory=set)
    failed: bool = False
    #: Why it failed (reason kinds), for the legend.
    why: set[str] = field(default_factory=set)


def style(index: int) -> dict:
    """The ``index``-th series' colour, marker and line style: no two series among the first
    ``len(MARKERS) * len(LINESTYLES)`` (77) share both marker and line style, and neighbours differ in all three."""
    marker = MARKERS[index % len(MARKERS)]
    linestyle = LINESTYLES[(index + index // len(MARKERS)) % len(LINESTYLES)]
    return {"color": COLORS[index % len(COLORS)], "marker": marker, "linestyle": linestyle}


def _has_bpp(r: Result) -> bool:
    return r.bpp is not None and math.isfinite(r.bpp) and math.isfinite(r.accuracy)


def _panels(report: Report) -> dict[str, dict[str, _Point]]:
    """threat -> case id -> point, for every case with a bpp (and the computed worst case per defense), each at
    its defense's clean bpp: a defense is one x in every panel, as it is one row of the matrix."""
    clean = {r.defense: r.bpp for r in report.results if r.threat is Threat.CLEAN and _has_bpp(r)}
    panels: dict[str, dict[str, _Point]] = defaultdict(dict)
    for cell in report.cells:
        r = cell.result
        if not _has_bpp(r):
            continue
        point = panels[r.threat].setdefault(r.case_id, _Point(r, clean.get(r.defense, r.bpp)))
        if cell.threshold is not None:
            point.thresholds.add(float(cell.threshold))
        point.failed |= cell.failed
        point.why |= {r.kind.value for r in cell.reasons}
    for r in (c.result for c in computed_worst(report)):
        if r.bpp is not None and math.isfinite(r.bpp):
            panels[Threat.WORST].setdefault(r.case_id, _Point(r, clean.get(r.defense, r.bpp)))
    return dict(sorted(panels.items(), key=lambda kv: (rank(kv[0]), kv[0])))


def _undefended(report: Report) -> dict[str, float]:
    """threat -> the undefended model's accuracy there (no codec, so no bpp: drawn as a level line)."""
    levels = {r.threat: r.accuracy for r in report.results if r.codec == "identity" and math.isfinite(r.accuracy)}
    for r in report.worst:  # its computed worst case, as the worst-case panel's points are
        if r.codec == "identity":
            levels.setdefault(Threat.WORST, r.accuracy)
    return levels


def _x_limits(low: float, high: float) -> tuple[float, float]:
    """A linear bpp axis at least a quarter of its values' size wide: one quality is one point in a readable
    range, not a dot on an axis of a hundredth of a bit with three-decimal ticks."""
    pad = max((high - low) * 0.08, high * 0.125, 0.05)
    return max(0.0, low - pad), high + pad


def _series(points: dict[str, _Point]) -> tuple[str, dict[str, list[_Point]]]:
    """A panel's title and its series: one per codec and rounds (and attack, where the threat has several)."""
    results = [p.result for p in points.values()]
    labels = columns(results)
    key_of = {r.case_id: column_key(r) for r in results}
    threat = results[0].threat
    title = WORST_TITLE if threat is Threat.WORST else threat
    attacks = {key: label.removeprefix(threat).strip() for key, label in labels.items()}
    if len(attacks) == 1 and next(iter(attacks.values())) and threat is not Threat.WORST:
        title = f"{threat} · {next(iter(attacks.values()))}"
    series: dict[str, list[_Point]] = defaultdict(list)
    for case_id, p in points.items():
        r = p.result
        label = f"{r.codec} r{r.rounds}"
        if len(attacks) > 1:
            label += f" · {attacks[key_of[case_id]]}"
        series[label].append(p)
    return title, series


def _order(label: str) -> tuple:
    codec, _, rest = label.partition(" r")
    rounds, _, attack = rest.partition(" · ")
    return (codec, int(rounds) if rounds.isdigit() else 0, attack)


def _dodges(series: dict[str, list[_Point]]) -> dict[str, int]:
    """Per series its dodge step: 0 unless it shares a point with another series; sharers fan out around 0."""
    def spot(p: _Point) -> tuple:
        return (round(p.bpp, 6), round(p.result.accuracy, 6))

    owners: dict[tuple, list[str]] = defaultdict(list)
    for label in sorted(series, key=_order):
        for s in {spot(p) for p in series[label]}:
            owners[s].append(label)
    sharing = [label for label in sorted(series, key=_order) if any(len(owners[spot(p)]) > 1 for p in series[label])]
    return {label: (sharing.index(label) - (len(sharing) - 1) / 2 if label in sharing else 0) for label in series}


def figure(report: Report) -> "Figure | None":
    """Accuracy against bpp, one panel per threat (threat order, worst case last), one legend below the panels.

    Returns None when no cell has a bpp (nothing to plot).
    """
    panels = _panels(report)
    if not panels:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    titled = {threat: _series(points) for threat, points in panels.items()}
    labels = sorted({label for _, series in titled.values() for label in series}, key=_order)
    styles = {label: style(i) for i, label in enumerate(labels)}
    bpps = [p.bpp for points in panels.values() for p in points.values()]
    low, high = min(bpps), max(bpps)
    log = low > 0 and high / low > 20
    span = (math.log10(high / low) if log else high - low) or (1.0 if log else max(abs(high), 1.0))

    def shift(x: float, steps: float) -> float:
        return x * 10 ** (steps * DODGE * span) if log else x + steps * DODGE * span

    fig = Figure(figsize=(3.6 * len(panels) + 0.6, 3.4 + 0.22 * math.ceil((len(labels) + 2) / 4)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False, sharex=True, sharey=True)[0]
    any_threshold = False
    failed_why: set[str] = set()
    undefended = _undefended(report)
    for ax, (threat, (title, series)) in zip(axes, titled.items()):
        dodge = _dodges(series)
        for label in sorted(series, key=_order):
            pts = sorted(series[label], key=lambda p: p.bpp)
            st = styles[label]
            xs = [shift(p.bpp, dodge[label]) for p in pts]
            ys = [p.result.accuracy for p in pts]
            err = [[max(0.0, p.result.accuracy - p.result.ci_low) for p in pts],
                   [max(0.0, p.result.ci_high - p.result.accuracy) for p in pts]]
            bars = ax.errorbar(xs, ys, yerr=err, color=st["color"], marker=st["marker"], linestyle=st["linestyle"],
                               markerfacecolor="none", markersize=6, linewidth=1.3, capsize=2, elinewidth=0.8,
                               label=label)
            bars.lines[0].set_gid(f"series:{label}")
            tx = [x for x, p in zip(xs, pts) for _ in sorted(p.thresholds)]
            ty = [t for p in pts for t in sorted(p.thresholds)]
            if ty:
                any_threshold = True
                ax.plot(tx, ty, linestyle="none", marker="_", markersize=14, markeredgewidth=2.2, color=st["color"],
                        zorder=4, gid=THRESHOLD_GID, label="_threshold")
            for x, p in zip(xs, pts):
                if p.result.quality is not None:  # which quality a point is, without a lookup table
                    ax.annotate(f"q{p.result.quality}", (x, p.result.accuracy), textcoords="offset points",
                                xytext=(4, 4), fontsize=6, color=st["color"])
            fx = [x for x, p in zip(xs, pts) if p.failed]
            fy = [p.result.accuracy for p in pts if p.failed]
            failed_why |= {w for p in pts if p.failed for w in p.why}
            if fy:
                ax.plot(fx, fy, linestyle="none", marker="x", markersize=11, markeredgewidth=2, color=FAILED_COLOR,
                        zorder=5, gid=FAILED_GID, label="_failed")
        if threat in undefended:
            ax.axhline(undefended[threat], color="0.35", linestyle=(0, (1, 2)), linewidth=1.2, zorder=1,
                       gid=UNDEFENDED_GID)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("bits per pixel")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        if log:
            ax.set_xscale("log")
        else:
            ax.set_xlim(*_x_limits(low, high))
    axes[0].set_ylabel("top-1 accuracy (95% CI)")
    handles = [Line2D([], [], color=styles[label]["color"], marker=styles[label]["marker"],
                      linestyle=styles[label]["linestyle"], markerfacecolor="none", label=label) for label in labels]
    if any(threat in undefended for threat in panels):
        handles.append(Line2D([], [], color="0.35", linestyle=(0, (1, 2)), linewidth=1.2,
                              label="undefended model (no codec)"))
    if any_threshold:
        handles.append(Line2D([], [], color="0.3", marker="_", markersize=14, markeredgewidth=2.2, linestyle="none",
                              label="threshold (in its series' colour)"))
    if any(p.failed for points in panels.values() for p in points.values()):
        why = ", ".join(sorted(failed_why)) or "see the report"
        handles.append(Line2D([], [], color=FAILED_COLOR, marker="x", markersize=9, markeredgewidth=2,
                              linestyle="none", label=f"failed ({why})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), 2 * len(panels) + 1)),
               fontsize=7, frameon=False)
    fig.suptitle(f"{report.model} on {report.dataset} (n={report.n})", fontsize=9)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG at ``PNG_DPI``, drawn once. (``savefig`` draws a figure that has a layout engine twice,
    a hidden draw to place it and then the real one; the Agg canvas's own draw places and paints in one pass,
    pixel for pixel the same image.)"""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(PNG_DPI)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def png(report: Report) -> bytes | None:
    """:func:`figure` as PNG bytes, or None if nothing has a bpp."""
    fig = figure(report)
    return None if fig is None else png_bytes(fig)


def write_plot(report: Report, path: Path) -> bool:
    """Write :func:`png` to ``path`` atomically. Returns False (and writes nothing) if nothing has a bpp."""
    data = png(report)
    if data is not None:
        atomic_write(Path(path), data)
    return data is not None
