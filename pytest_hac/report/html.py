"""The report as one self-contained HTML page: summary, matrix, plot, cells and a gallery of photos.

Everything is inline (styles, the plot and the thumbnails as ``data:`` URIs): the file opens
from an artifact, offline, with no script at all. Its content security policy forbids every
network request, so a page that renders here renders the same anywhere.

With ``--hac-history``, the trend (:mod:`pytest_hac.report.trend`, computed once per run and shared with
the Markdown report) follows the plot: the cells-by-runs table with significant steps and drifts marked,
its findings, its PNG inlined and the runs it covers.

The gallery (:mod:`pytest_hac.core.engine.gallery`, the JSON of :meth:`~pytest_hac.core.engine.gallery.Gallery.to_dict`)
shows, per chosen image, the clean photo, what each defense decodes (bpp, PSNR) and, per
attacked cell, the adversarial photo, its perturbation magnified and the prediction.
"""
from __future__ import annotations

import base64
from collections import defaultdict
from html import escape
from typing import Any

from ..attacks import describe_attack
from ..core.judge.result import GATE_RULES, format_threshold
from ..core.judge.verdict import Status
from ..formats import TABLE_DIGITS, interval
from .news import LABELS, news
from .notes import backward_note
from .rate_matched import rate_html
from .schema import Report
from .trend import Trend
from .trend_view import LEGEND as TREND_LEGEND
from .trend_view import RUN_HEADERS, point_text, run_rows, trend_png, window_text
from .view import LEGEND, all_cells, column_key, columns, defense_key, defense_label, matrix, number

#: No request leaves the page: images are data: URIs, styles inline, scripts none.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top;font-size:13px}th{background:#f3f3f3}
td.failed,tr.failed td{background:#fde4e4}td.failed a{color:#b00020;font-weight:600}
.badge{padding:1px 6px;border-radius:3px;color:#fff}.pass{background:#2e7d32}.fail{background:#c62828}
.right{color:#2e7d32}.wrong{color:#c62828;font-weight:600}
figure{display:inline-block;margin:2px;text-align:center}figcaption{font-size:11px;max-width:140px}
img.thumb{display:block;height:96px;width:auto;border:1px solid #ddd}#plot-image,#eps-plot-image{max-width:100%}
td.interpolated{font-style:italic}
.gallery td{text-align:center}.legend{font-size:13px;color:#555;max-width:900px}
td.drop{background:#fde4e4;font-weight:600}td.apart{color:#999}#trend-image{max-width:100%}
.news{border:2px solid #c62828;background:#fde4e4;color:#b00020;padding:.4em 1em;margin:.5em 0 1em}
.news a{color:#b00020;font-weight:600}
"""


def page(report: Report, *, plot_png: bytes | None = None, gallery: dict[str, Any] | None = None,
         trend: Trend | None = None, eps_png: bytes | None = None) -> str:
    """The whole report as an HTML document (a string); ``trend`` shows when it spans two runs or more;
    ``eps_png`` is the plot of accuracy against eps (:mod:`.eps_plot`)."""
    title = f"pytest-hac robustness report: {report.model}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta http-equiv='Content-Security-Policy' content=\"{POLICY}\">"
             f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1>", news_box(report, trend), summary(report),
             f"<p class='legend'>{escape(LEGEND.replace('❌', '✗'))}</p>"]
    if report.cells:
        parts += ["<h2 id='matrix'>Matrix</h2>", matrix_html(report)]
    if plot_png:
        data = base64.b64encode(plot_png).decode("ascii")
        parts += ["<h2 id='plot'>Accuracy against bits per pixel</h2>",
                  f"<img id='plot-image' alt='accuracy against bits per pixel' src='data:image/png;base64,{data}'>"]
    if eps_png:
        data = base64.b64encode(eps_png).decode("ascii")
        parts += ["<h2 id='eps-plot'>Accuracy against eps</h2>",
                  f"<img id='eps-plot-image' alt='accuracy against eps' src='data:image/png;base64,{data}'>"]
    if report.cells:
        parts.append(rate_html(report))
    if trend is not None and len(trend.entries) >= 2:
        parts += [f"<h2 id='trend'>Trend over the last {len(trend.entries)} runs</h2>", trend_section(report, trend)]
    if report.cells:
        parts += ["<h2 id='cells'>Cells</h2>", cells(report)]
    if gallery and gallery.get("cells"):
        parts += ["<h2 id='gallery'>Gallery</h2>", gallery_section(report, gallery)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def news_box(report: Report, trend: Trend | None) -> str:
    """:func:`.news.news` in a red box above everything else, each item linking to its cell's row or section
    (nothing when there is no bad news)."""
    items = news(report, trend)
    if not items:
        return ""
    rows = {r.case_id for r in report.results}
    out = []
    for item in items:
        target = (_anchor(item.cell) if item.cell in rows else "trend" if item.section == "trend" else
                  "cells" if item.cell else "summary")
        name = escape(item.cell or item.section)
        out.append(f"<li><b>{escape(LABELS[item.kind])}</b> <a href='#{target}'>{name}</a>: "
                   f"{escape(item.text.replace('`', ''))}</li>")
    count = f"{len(items)} thing{'s' if len(items) != 1 else ''} to look at first"
    return f"<div id='news' class='news'><b>{count}:</b><ul>{''.join(out)}</ul></div>"


def summary(report: Report) -> str:
    c = report.counts
    status = report.status if report.complete or report.error else \
        "INCOMPLETE (running, interrupted, stopped early or crashed)"
    items = [f"<b>model</b> {escape(report.model)} · <b>data</b> {escape(report.dataset)} · <b>n</b> {report.n} "
             f"images · <b>device</b> {escape(report.device)} · <b>seed</b> {report.seed}",
             f"<b>cells</b> {c['cells']} · <b>passed</b> {c['passed']} · <b>failed</b> {c['failed']} · "
             f"<b>measured</b> {c['measured']} · run {escape(status)}",
             f"<b>gate rule</b> {escape(report.gate_rule)}: {escape(GATE_RULES.get(report.gate_rule, ''))}"]
    items += [escape(line) for line in report.meta.get("thresholds", [])]
    items += [escape(note) for note in report.notes]
    return "<ul id='summary'>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _anchor(case_id: str) -> str:
    return "cell-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id)


def matrix_html(report: Report) -> str:
    """Rows: defenses; columns: bpp, PSNR and each threat x attack; a failed cell is marked and links to its reasons."""
    view = matrix(report)
    out = ["<table id='matrix-table'><tr><th>defense</th><th>bpp</th><th>PSNR dB</th>"
           + "".join(f"<th>{escape(h)}</th>" for h in view.headers) + "</tr>"]
    for row in view.rows:
        tds = []
        for h in view.headers:
            e = row.entries.get(h)
            if e is None:
                tds.append("<td></td>")
                continue
            text, cls = (e.text + " ✗", " class=failed") if e.failed else (e.text, "")
            tds.append(f"<td{cls}><a href='#{_anchor(e.result.case_id)}'>{text}</a></td>")
        out.append(f"<tr><th>{escape(row.label)}</th><td>{number(row.bpp)}</td><td>{number(row.psnr, 1)}</td>"
                   f"{''.join(tds)}</tr>")
    return "\n".join(out) + "</table>"


def cells(report: Report) -> str:
    """One row per test and cell (its anchor is the matrix's link): attack, accuracy, threshold, verdict, reasons."""
    out = ["<table id='cells-table'><tr><th>cell</th><th>test</th><th>attack</th><th>accuracy</th><th>95% CI</th>"
           "<th>n</th><th>threshold</th><th>gate</th><th>reasons</th><th>bpp</th><th>PSNR</th><th>seconds</th></tr>"]
    seen: set[str] = set()
    for c in sorted(all_cells(report), key=lambda c: (c.case_id, c.test)):
        r = c.result
        anchor = "" if r.case_id in seen else f" id='{_anchor(r.case_id)}'"
        seen.add(r.case_id)
        verdict = "–" if not c.test else {
            Status.PASSED: "<span class='badge pass'>pass</span>",
            Status.FAILED: "<span class='badge fail'>FAIL</span>",
            Status.MEASURED: "<span class='badge'>measured</span>"}[c.status]
        reasons = "; ".join(str(x) for x in c.reasons + c.verdict.warnings) or "–"
        attack = "–" if r.spec is None else describe_attack(r.spec)
        if backward_note(r):
            attack += f" ({backward_note(r)})"
        threshold = "–" if c.threshold is None or not c.test else format_threshold(c.threshold)
        test = c.test.split("::")[-1] if c.test else "(computed)"
        out.append(f"<tr{anchor}{' class=failed' if c.failed else ''}><td>{escape(r.case_id)}</td>"
                   f"<td>{escape(test)}</td><td>{escape(attack)}</td><td>{r.accuracy:.{TABLE_DIGITS}f}</td>"
                   f"<td>{interval(r.ci_low, r.ci_high)}</td><td>{r.n}</td><td>{threshold}</td><td>{verdict}</td>"
                   f"<td>{escape(reasons)}</td><td>{number(r.bpp)}</td><td>{number(r.psnr, 1)}</td>"
                   f"<td>{r.seconds:.1f}</td></tr>")
    return "\n".join(out) + "</table>"


def trend_section(report: Report, trend: Trend) -> str:
    """The trend as the Markdown report shows it (the same cells, marks and findings), its plot inlined."""
    ids = {r.case_id for r in report.results}
    n = len(trend.entries)
    out = [f"<p class='legend'>{escape(TREND_LEGEND.replace('*', ''))}</p>",
           "<table id='trend-table'><tr><th>cell</th>" + "".join(f"<th>{i + 1}</th>" for i in range(n))
           + "<th>window Δ</th><th>finding</th></tr>"]
    for case_id, points in trend.cells.items():
        name = escape(case_id)
        if case_id in ids:
            name = f"<a href='#{_anchor(case_id)}'>{name}</a>"
        tds = []
        for p in points:
            text = point_text(p)
            cls = " class=drop" if text.endswith("▼") else " class=apart" if text.endswith("°") else ""
            tds.append(f"<td{cls}>{escape(text)}</td>")
        delta, finding = window_text(trend, case_id)
        finding = "<b>drift</b>" if finding == "**drift**" else escape(finding)
        out.append(f"<tr><th>{name}</th>{''.join(tds)}<td>{escape(delta)}</td><td>{finding}</td></tr>")
    out.append("</table>")
    items = [f.message(trend.labels) for f in trend.findings] or ["no cell dropped significantly over the window"]
    out.append("<ul id='trend-findings'>" + "".join(f"<li>{escape(x.replace('`', ''))}</li>"
                                                    for x in items + trend.notes) + "</ul>")
    png = trend_png(trend)
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<img id='trend-image' alt='accuracy per cell across the runs' src='data:image/png;base64,{data}'>")
    out.append("<table id='trend-runs'><tr>" + "".join(f"<th>{h}</th>" for h in RUN_HEADERS) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{escape(x)}</td>" for x in row) + "</tr>" for row in run_rows(trend)]
    return "\n".join(out) + "</table>"


def _img(data: str, alt: str) -> str:
    return f"<img class='thumb' alt='{escape(alt)}' src='data:image/jpeg;base64,{data}'>"


def _prediction(shot: dict[str, Any]) -> str:
    mark, cls = ("✓", "right") if shot["correct"] else ("✗", "wrong")
    return f"<span class='{cls}'>{escape(shot['predicted_name'])} {mark}</span>"


def _figure(shot: dict[str, Any]) -> str:
    """One gallery cell: the decoded clean photo, or the adversarial photo and its magnified perturbation."""
    if "source" in shot:
        return (f"<figure>{_img(shot['source'], 'adversarial photo')}<figcaption>adversarial "
                f"(L∞ {shot['linf']:.1f}/255)</figcaption></figure>"
                f"<figure>{_img(shot['perturbation'], 'perturbation')}<figcaption>perturbation "
                f"×{shot['magnified']:.0f}</figcaption></figure><br>{_prediction(shot)}")
    costs = [f"{shot['bpp']:.2f} bpp" if shot.get("bpp") is not None else "",
             f"{shot['psnr']:.1f} dB" if shot.get("psnr") is not None else ""]
    photo = _img(shot["decoded"], "decoded photo") if shot.get("decoded") else ""
    caption = " · ".join(x for x in costs if x)
    return f"<figure>{photo}<figcaption>{caption}</figcaption></figure><br>{_prediction(shot)}"


def gallery_section(report: Report, gallery: dict[str, Any]) -> str:
    """Per chosen image: the clean photo, then a table of defenses x threats, each cell's picture and prediction."""
    by_id = {c.case_id: c.result for c in report.cells}
    shown = {cid: shots for cid, shots in gallery["cells"].items() if cid in by_id}
    cols = columns([by_id[cid] for cid in shown])
    headers = list(dict.fromkeys(cols.values()))
    out = []
    for index, image in sorted(gallery.get("images", {}).items(), key=lambda kv: int(kv[0])):
        rows: dict[tuple, dict[str, dict]] = defaultdict(dict)
        for cid, shots in shown.items():
            if index in shots:
                r = by_id[cid]
                rows[defense_key(r)][cols[column_key(r)]] = shots[index]
        out.append(f"<h3>{escape(image['id'])}: {escape(image['label_name'])}</h3>"
                   f"<figure>{_img(image['clean'], 'clean photo')}<figcaption>clean photo</figcaption></figure>")
        out.append("<table class='gallery'><tr><th>defense</th>" + "".join(f"<th>{escape(h)}</th>" for h in headers)
                   + "</tr>")
        for key in sorted(rows):
            tds = "".join(f"<td>{_figure(rows[key][h])}</td>" if h in rows[key] else "<td></td>" for h in headers)
            out.append(f"<tr><th>{escape(defense_label(key))}</th>{tds}</tr>")
        out.append("</table>")
    return "\n".join(out)
