"""Codecs compared at the same bits per pixel: a view of the measured cells, never a gate.

For each threat and attack (and number of rounds), each codec's accuracy at common bpp points: points of a
fixed grid that lie inside the bpp range two or more codecs measured (the middle of such an overlap where
no grid point falls in it). Between two measured qualities the accuracy is interpolated linearly in bpp and
marked as such, with both measured neighbours and their 95% intervals beside it; outside a codec's
measured range nothing is extrapolated. A defense's rate is its clean cell's bpp (else the cell's own).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from html import escape

from ..attacks import Threat
from ..attacks.threats import rank
from ..codecs.pillow_codecs import FORMATS
from ..core.judge.result import Result
from ..formats import accuracy
from .schema import Report
from .view import column_key, columns, computed_worst

#: Candidate rates (bpp): about three a doubling, as rate-distortion plots are read.
GRID = (0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0,
        8.0, 10.0, 12.0, 16.0)
TITLE = "Codecs at the same rate (interpolated between measured qualities; never a gate)"
LEGEND = ("Each codec's accuracy at common bits per pixel, at rates inside the bpp range two or more codecs "
          "measured. ≈ marks a value interpolated linearly in bpp between the two measured qualities beside it "
          "(accuracy [95% interval] @ bpp): it has no interval of its own and gates nothing. – : outside the codec's "
          "measured range (nothing is extrapolated).")


@dataclass(frozen=True)
class Measured:
    """One measured quality of a codec: its rate and its cell's accuracy with the 95% interval."""

    quality: int | None
    bpp: float
    accuracy: float
    ci_low: float
    ci_high: float

    def text(self) -> str:
        q = "" if self.quality is None else f"q{self.quality} "
        return f"{q}{accuracy(self.accuracy, self.ci_low, self.ci_high)} @{self.bpp:.2f}"


@dataclass(frozen=True)
class Matched:
    """A codec at one rate: measured there, or interpolated between its two neighbours."""

    accuracy: float
    below: Measured
    above: Measured

    @property
    def interpolated(self) -> bool:
        return self.below is not self.above

    def text(self) -> str:
        if not self.interpolated:
            q = "" if self.below.quality is None else f" q{self.below.quality}"
            return f"{accuracy(self.accuracy, self.below.ci_low, self.below.ci_high)} (measured{q})"
        return f"≈{self.accuracy:.2f} (interpolated: {self.below.text()} · {self.above.text()})"


@dataclass(frozen=True)
class RateTable:
    """One threat and attack at one number of rounds: rows are rates, columns codecs."""

    title: str
    codecs: tuple[str, ...]
    rows: tuple[tuple[float, tuple[Matched | None, ...]], ...]


def at_rate(points: list[Measured], bpp: float) -> Matched | None:
    """The codec's accuracy at ``bpp`` from its measured ``points`` (sorted by bpp), or None outside their range."""
    for p in points:
        if math.isclose(p.bpp, bpp, rel_tol=1e-9, abs_tol=1e-12):
            return Matched(p.accuracy, p, p)
    for lo, hi in zip(points, points[1:]):
        if lo.bpp < bpp < hi.bpp:
            t = (bpp - lo.bpp) / (hi.bpp - lo.bpp)
            return Matched(lo.accuracy + t * (hi.accuracy - lo.accuracy), lo, hi)
    return None


def common_rates(ranges: list[tuple[float, float]]) -> list[float]:
    """Grid rates inside the span two or more ``ranges`` (low, high) share; an overlap that holds no grid rate
    gets its middle (rounded to two decimals where that stays inside)."""
    overlaps = sorted((max(a[0], b[0]), min(a[1], b[1])) for i, a in enumerate(ranges) for b in ranges[i + 1:]
                      if max(a[0], b[0]) <= min(a[1], b[1]))
    merged: list[list[float]] = []
    for lo, hi in overlaps:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    rates = []
    for lo, hi in merged:
        inside = [g for g in GRID if lo <= g <= hi]
        if not inside:
            middle = (lo + hi) / 2
            inside = [round(middle, 2) if lo <= round(middle, 2) <= hi else middle]
        rates += inside
    return rates


def _rate_of(results: list[Result]) -> dict:
    """Each defense's rate: its clean cell's bpp, else the first bpp any of its cells measured."""
    rate: dict = {}
    for r in sorted(results, key=lambda r: r.threat is not Threat.CLEAN):
        if r.bpp is not None and math.isfinite(r.bpp):
            rate.setdefault(r.defense, r.bpp)
    return rate


def rate_tables(report: Report) -> list[RateTable]:
    """The comparison of :mod:`this module <pytest_hac.report.rate_matched>`: one table per threat x attack x
    rounds where two codecs or more measured overlapping rates."""
    results = report.results + [c.result for c in computed_worst(report)]
    rate = _rate_of(results)
    labels = columns(results)
    groups: dict[tuple, dict[str, list[Measured]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.codec == "identity" or r.defense not in rate or not math.isfinite(r.accuracy):
            continue
        groups[(column_key(r), r.rounds)][r.codec].append(
            Measured(r.quality, rate[r.defense], r.accuracy, r.ci_low, r.ci_high))
    tables = []
    for (key, rounds), by_codec in sorted(groups.items(), key=lambda kv: (rank(kv[0][0][0]), labels[kv[0][0]],
                                                                          kv[0][1])):
        if len(by_codec) < 2:
            continue
        series = {c: sorted(ps, key=lambda p: (p.bpp, p.quality or 0)) for c, ps in sorted(by_codec.items())}
        rates = common_rates([(ps[0].bpp, ps[-1].bpp) for ps in series.values()])
        if not rates:
            continue
        # a codec that reaches none of the shared rates has no column
        series = {c: ps for c, ps in series.items() if any(at_rate(ps, b) for b in rates)}
        rows = tuple((b, tuple(at_rate(ps, b) for ps in series.values())) for b in rates)
        tables.append(RateTable(f"{labels[key]} · rounds {rounds}", tuple(series), rows))
    return tables


def libraries(report: Report) -> list[str]:
    """``jpeg``: libjpeg-turbo 3.2.0, ...: the library and version (from the report's provenance) of each
    library codec the report measured."""
    recorded = report.meta.get("versions", {})
    library = {"jpeg": "libjpeg-turbo", "jpeg-kornia": "libjpeg-turbo",
               **{n: f.version_key for n, f in FORMATS.items()}}
    used = sorted({r.codec for r in report.results} & set(library))
    return [f"`{c}` {library[c]} {recorded.get(library[c], '(version not recorded)')}" for c in used]


def rate_markdown(report: Report) -> str:
    """The Markdown section ("" when no two codecs share a rate and no library codec ran)."""
    from tabulate import tabulate

    tables, used = rate_tables(report), libraries(report)
    if not tables and not used:
        return ""
    lines = [f"## {TITLE}", ""]
    if used:
        lines += ["Encoders: " + " · ".join(used), ""]
    if tables:
        lines += [LEGEND, ""]
    for t in tables:
        body = [[f"{b:.3g}"] + ["–" if m is None else m.text() for m in ms] for b, ms in t.rows]
        lines += [f"### {t.title}", "", tabulate(body, ["bpp", *t.codecs], tablefmt="github", disable_numparse=True),
                  ""]
    return "\n".join(lines).rstrip() + "\n"


def rate_html(report: Report) -> str:
    """The same tables for the page ("" when there are none)."""
    tables = rate_tables(report)
    used = libraries(report)
    if not tables and not used:
        return ""
    out = [f"<h2 id='rate-matched'>{escape(TITLE)}</h2>"]
    if used:
        out.append("<p id='encoders'>Encoders: " + escape(" · ".join(used).replace("`", "")) + "</p>")
    if tables:
        out.append(f"<p class='legend'>{escape(LEGEND)}</p>")
    for t in tables:
        out.append(f"<h3>{escape(t.title)}</h3><table class='rate-matched'><tr><th>bpp</th>"
                   + "".join(f"<th>{escape(c)}</th>" for c in t.codecs) + "</tr>")
        for b, ms in t.rows:
            tds = "".join("<td>–</td>" if m is None else
                          f"<td{' class=interpolated' if m.interpolated else ''}>{escape(m.text())}</td>" for m in ms)
            out.append(f"<tr><th>{b:.3g}</th>{tds}</tr>")
        out.append("</table>")
    return "\n".join(out)
