"""The report's second plot: accuracy against eps, per defense, where a run measured one attack at several eps.

One panel per threat and attack (every parameter but eps); in it one series per defense (codec, quality,
rounds) with its 95% intervals, starting at eps 0 with the defense's clean cell where there is one. A panel
needs two eps values or more; without any such panel there is no plot. Same styles and PNG as
:mod:`.plot` (accuracy against bpp), beside which it is written (``<stem>.eps.png``).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING

from ..attacks import Threat
from ..attacks.threats import rank
from ..core.judge.result import Result
from .plot import png_bytes, style
from .schema import Report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: ``gid`` prefix of each series' line (tests and post-processing find them by it).
SERIES_GID = "eps-series:"


def _label(r: Result) -> str:
    return f"{r.codec}" + ("" if r.quality is None else f" q{r.quality}") + f" r{r.rounds}"


def _scale(norm: str) -> float:
    return 255.0 if norm == "Linf" else 1.0


def panels(report: Report) -> dict[tuple, dict[str, list[Result]]]:
    """(threat, attack without eps) -> defense label -> results sorted by eps (the clean cell first, at eps 0),
    for every threat and attack measured at two eps values or more."""
    clean = {r.defense: r for r in report.results if r.threat is Threat.CLEAN}
    grouped: dict[tuple, dict[str, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for r in report.results:
        if r.spec is None or r.spec.eps is None or not math.isfinite(r.accuracy):
            continue
        grouped[(r.threat, replace(r.spec, eps=0.0))][_label(r)].append(r)
    out = {}
    for key, series in sorted(grouped.items(), key=lambda kv: (rank(kv[0][0]), kv[0][1].key)):
        if len({r.spec.eps for rs in series.values() for r in rs}) < 2:
            continue
        out[key] = {label: ([clean[rs[0].defense]] if rs[0].defense in clean else [])
                    + sorted(rs, key=lambda r: r.spec.eps) for label, rs in sorted(series.items())}
    return out


def eps_figure(report: Report) -> "Figure | None":
    """Accuracy against eps, one panel per threat x attack measured at several eps; None when there is none."""
    found = panels(report)
    if not found:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = sorted({label for series in found.values() for label in series})
    styles = {label: style(i) for i, label in enumerate(labels)}
    fig = Figure(figsize=(3.8 * len(found) + 0.6, 3.6 + 0.22 * math.ceil(len(labels) / 4)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(found), squeeze=False, sharey=True)[0]
    for ax, ((threat, spec), series) in zip(axes, found.items()):
        scale = _scale(spec.norm)
        for label, results in series.items():
            xs = [0.0 if r.spec is None else r.spec.eps * scale for r in results]
            ys = [r.accuracy for r in results]
            err = [[max(0.0, r.accuracy - r.ci_low) for r in results], [max(0.0, r.ci_high - r.accuracy)
                                                                       for r in results]]
            st = styles[label]
            bars = ax.errorbar(xs, ys, yerr=err, color=st["color"], marker=st["marker"], linestyle=st["linestyle"],
                               markerfacecolor="none", markersize=6, linewidth=1.3, capsize=2, elinewidth=0.8,
                               label=label)
            bars.lines[0].set_gid(SERIES_GID + label)
        ax.set_title(f"{threat} · {spec.name} {spec.norm}", fontsize=9)
        ax.set_xlabel("eps (×1/255)" if spec.norm == "Linf" else "eps (L2, pixels in [0, 1])")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 accuracy (95% CI)")
    handles = [h for h in axes[0].get_legend_handles_labels()[0]]
    if len(found) > 1:
        seen = {h.get_label() for h in handles}
        for ax in axes[1:]:
            handles += [h for h in ax.get_legend_handles_labels()[0] if h.get_label() not in seen]
            seen |= {h.get_label() for h in handles}
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), 4)), fontsize=7,
               frameon=False)
    fig.suptitle(f"{report.model} on {report.dataset} (n={report.n}): accuracy against eps (eps 0: clean)",
                 fontsize=9)
    return fig


def eps_png(report: Report) -> bytes | None:
    """:func:`eps_figure` as PNG bytes, or None when no attack was measured at two eps values."""
    fig = eps_figure(report)
    return None if fig is None else png_bytes(fig)
