"""The report as Markdown (tabulate tables) and the terminal's matrix."""
from __future__ import annotations

import re

from ..attacks import Threat
from ..attacks.threats import rank
from ..core.judge.result import GATE_RULES, Result, format_threshold
from ..core.judge.soundness import CHECKS, SOUNDNESS_MODES, STAND_IN_DISTANCE
from ..core.judge.stats import SIGNIFICANCE_LEVEL
from ..core.judge.verdict import Status
from ..formats import TABLE_DIGITS, interval
from .notes import backward_note
from .schema import Cell, Report
from .view import LEGEND, computed_worst, matrix_table, number, partial

VERDICT_SHOWN = {Status.PASSED: "pass", Status.FAILED: "**FAIL**", Status.MEASURED: "measured"}

#: Below this side a JPEG's ~600-byte header dominates its bits per pixel.
SMALL_IMAGE = 64


def _reasons(cell: Cell) -> str:
    return "; ".join(str(r) for r in cell.reasons)


def _test_name(test: str) -> str:
    return test.split("::")[-1].split("[")[0]


def github_anchor(heading: str) -> str:
    """The ``#anchor`` GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return "#" + re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def news_lines(items: list, trend_heading: str = "") -> list[str]:
    """:func:`.news.news` as the report's first lines: red marks (Markdown has no colour), bold kinds, links to
    the section that says more."""
    from .news import LABELS

    sections = {"cells": "#cells", "soundness-checks": "#soundness-checks", "summary": "#summary",
                "trend": github_anchor(trend_heading) if trend_heading else "#cells"}
    lines = []
    for item in items:
        link = sections[item.section]
        what = f"[`{item.cell}`]({link})" if item.cell else f"[{item.section}]({link})"
        lines.append(f"- 🔴 **{LABELS[item.kind]}** {what}: {item.text}")
    return lines


def markdown(report: Report, *, plot_name: str | None = None, sections: tuple[str, ...] = (),
             news: list | None = None, trend_heading: str = "") -> str:
    """The whole report as GitHub-flavoured Markdown: ``news`` (:func:`.news.news`: failed cells, regressions,
    trend drops, soundness findings) first, in red; ``sections`` (e.g. the trend, under ``trend_heading``) follow
    the plot."""
    from tabulate import tabulate

    c = report.counts
    meta = report.meta
    status_text = report.status if report.complete else \
        "**INCOMPLETE** (running, interrupted, stopped early or crashed: the cells below finished)"
    if report.error:
        status_text = f"**ERROR**: {report.error} (no verdict of this run counts as passed)"
    threads = f" · **torch threads** {meta['torch_threads']}" if "torch_threads" in meta else ""
    lines = [f"# pytest-hac robustness report: {report.model}", ""]
    if news:
        lines += [f"**🔴 {len(news)} thing{'s' if len(news) != 1 else ''} to look at first:**", ""]
        lines += news_lines(news, trend_heading) + ["", "## Summary", ""]
    lines += [
        f"- **model** `{report.model}` · **data** `{report.dataset}` · **n** {report.n} images · "
        f"**device** {report.device} · **seed** {report.seed}{threads}",
        f"- **cells** {c['cells']} · **passed** {c['passed']} · **failed** {c['failed']} · **measured** "
        f"{c['measured']} (no threshold) · run {status_text}",
        f"- **gate rule** `{report.gate_rule}`: {GATE_RULES.get(report.gate_rule, report.gate_rule)}",
    ]
    pre = meta.get("preprocessing")
    if pre:
        lines.append(f"- **preprocessing** shorter side resized to {pre['resize']} px, centre crop {pre['crop']} px; "
                     f"normalization {pre['normalization']}")
    labels = meta.get("labels")
    if labels:
        shown = "" if "map" not in labels else ": " + ", ".join(f"`{k}` → {v}" for k, v in labels["map"].items())
        lines.append(f"- **labels** {labels['rule']}{shown}")
    mode = meta.get("soundness_mode")
    if mode in SOUNDNESS_MODES:
        probe = f" (probes took {meta['probe_seconds']:.1f} s)" if meta.get("probe_seconds") else ""
        lines.append(f"- **soundness** `{mode}`: {SOUNDNESS_MODES[mode]}{probe}")
    warned = [cell for cell in report.cells if cell.verdict.warnings]
    if warned:
        lines.append("- **flagged, not failed** (`--hac-soundness=warn`): " + ", ".join(
            f"`{cell.case_id}`" for cell in warned[:10]))
    for line in meta.get("thresholds", []):
        lines.append(f"- **thresholds** {line}")
    if report.skipped_images:
        lines.append(f"- **skipped unreadable images** {len(report.skipped_images)}: "
                     + ", ".join(report.skipped_images[:10]))
    below = sorted((cell for cell in report.cells if any(r.kind == "threshold" for r in cell.reasons)),
                   key=lambda cell: cell.result.accuracy - (cell.threshold or 0))
    if below:
        lines.append("- **below their threshold**: " + ", ".join(
            f"`{cell.case_id}` {cell.result.accuracy:.3f} < {format_threshold(cell.threshold)}" for cell in below[:5]))
    other = [cell for cell in report.cells if cell.failed and cell not in below]
    if other:
        lines.append("- **failed for other reasons**: " + ", ".join(
            f"`{cell.case_id}` ({', '.join(sorted({r.kind for r in cell.reasons}) or {'test error'})})"
            for cell in other[:5]))
    compared = [cell for cell in report.cells if cell.comparison is not None and cell.comparison.comparable]
    drops = sorted((cell for cell in compared if cell.comparison.delta_points < 0),
                   key=lambda cell: cell.comparison.delta_points)
    if drops:
        lines.append("- **worst regressions against the baseline**: " + ", ".join(
            f"`{cell.case_id}` {cell.comparison.delta_points:+.1f} pts"
            + (" (significant)" if cell.comparison.regression else "") for cell in drops[:5]))
    partial = [cell for cell in compared if cell.comparison.compared < cell.comparison.of]
    if partial:
        cell = partial[0]
        lines.append(f"- baseline compared on the shared images only: {len(partial)} cell(s) on "
                     f"{cell.comparison.compared} of the baseline's {cell.comparison.of} images")
    gains = [cell for cell in compared if cell.comparison.p_gain is not None
             and cell.comparison.p_gain < SIGNIFICANCE_LEVEL]
    if gains:
        lines.append(f"- {len(gains)} cell(s) improved significantly on the baseline: consider updating it "
                     f"(--hac-save-baseline): " + ", ".join(f"`{cell.case_id}` {cell.comparison.delta_points:+.1f} pts"
                                                         for cell in gains[:5]))
    size = meta.get("image_size")
    if size and min(size) < SMALL_IMAGE and any(r.codec.startswith("jpeg") for r in report.results):
        lines.append(f"- images are {size[0]}×{size[1]} px: a JPEG's header (about 600 bytes) alone is "
                     f"{600 * 8 / (size[0] * size[1]):.1f} bpp at this size, so JPEG's bpp is no fair rate comparison "
                     f"with learned codecs here; compare rates on images of {SMALL_IMAGE} px or more")
    for note in report.notes:
        lines.append(f"- {note}")
    lines += ["", LEGEND, ""]
    if report.cells:
        headers, body = matrix_table(report)
        lines += ["## Matrix", "", tabulate(body, headers, tablefmt="github", disable_numparse=True), ""]
    if plot_name:
        lines += [f"![accuracy against bits per pixel]({plot_name})", ""]
    for section in sections:
        lines += [section.rstrip(), ""]
    lines += [soundness_section(report), ""]
    lines += cells_section(report)
    return "\n".join(lines) + "\n"


def soundness_section(report: Report) -> str:
    """Every check with its state (ok, FLAGGED, not run: why), then every finding under its own heading."""
    results = report.checked
    findings, states = report.findings, report.checks
    lines = ["## Soundness checks", ""]
    for chk in CHECKS:
        state = states[chk.name]
        shown = "**FLAGGED**" if state == "flagged" else state
        lines.append(f"- `{chk.name}` ({chk.meaning}): {shown}")
    if findings:
        lines += ["", "### Findings", ""] + [f"- `{f.check}`: {f.message}" for f in findings]
    lines += stand_in_table(results)
    if report.references:
        lines += ["", "Compared with cells outside this run's cells (evaluated for the checks): "
                  + ", ".join(f"`{r.case_id}` {r.accuracy:.2f}" for r in report.references[:10])]
    return "\n".join(lines)


def stand_in_table(results: list[Result]) -> list[str]:
    """Per defense whose stand-in an attack followed: how far the stand-in is from the decoded image, relative to
    how far the decoded image is from the input (median and largest over the probe's clean images), and how often
    the classifier's prediction differs between the two."""
    from tabulate import tabulate

    seen = {}
    for r in results:
        if r.diagnostics.stand_in is not None:
            seen.setdefault(r.defense, r.diagnostics.stand_in)
    if not seen:
        return []
    rows = [[f"`{d}`", f"{s.distance:.3f}", f"{s.worst:.3f}", f"{s.disagree}/{s.n}",
             "**FLAGGED**" if s.distance > STAND_IN_DISTANCE else "ok"]
            for d, s in sorted(seen.items(), key=lambda kv: str(kv[0]))]
    headers = ["defense", "stand-in distance (median)", "largest", "predictions differ", "stand-in-fidelity"]
    return ["", f"### Stand-ins against the decoded images (flagged above {STAND_IN_DISTANCE:g})", "",
            tabulate(rows, headers, tablefmt="github", disable_numparse=True)]


def cells_section(report: Report) -> list[str]:
    """One table per threat, one row per test and cell, with the full attack and the reasons of a failure."""
    from tabulate import tabulate

    several_tests = len({_test_name(cell.test) for cell in report.cells}) > 1
    computed = computed_worst(report)
    cells = list(report.cells) + computed
    unfinished = partial(report)
    lines = ["## Cells", ""]
    for threat in sorted({cell.result.threat for cell in cells}, key=rank):
        rows = []
        for cell in sorted((x for x in cells if x.result.threat == threat), key=lambda x: (x.case_id, x.test)):
            r = cell.result
            verdict = "–" if not cell.test else VERDICT_SHOWN[cell.status]
            if cell.verdict.warnings:
                verdict += " ⚑"
            comp = cell.comparison
            delta = "–" if comp is None else "n/a" if not comp.comparable else f"{comp.delta_points:+.1f}"
            threshold = cell.threshold if cell.test else None
            why = _reasons(cell) or "; ".join(str(w) for w in cell.verdict.warnings)
            if cell in computed and unfinished:
                why = "partial: computed from the cells that ran (the run is incomplete, a shard or a selection)"
            if comp is not None and not comp.comparable and "baseline" not in why:
                why = (why + "; " if why else "") + f"not comparable with the baseline: {comp.why}"
            attack = "–" if r.spec is None else r.spec.describe()
            if backward_note(r):
                attack += f" ({backward_note(r)})"
            if r.min_norm:
                attack += (f" (median L2 {r.median_l2:.3g})" if r.median_l2 is not None
                           else " (median L2 ∞: fewer than half the images fooled)")
            if r.diagnostics.eot_samples is not None:
                attack += (" (random codec: one seeded decode per image evaluated"
                           + (f"; each gradient averaged over {r.diagnostics.eot_samples} decodes)"
                              if r.diagnostics.eot_samples else ")"))
            row = [r.case_id] + ([_test_name(cell.test) or "(computed)"] if several_tests else []) + [
                attack, f"{r.accuracy:.{TABLE_DIGITS}f}", interval(r.ci_low, r.ci_high), r.n, delta,
                "–" if threshold is None else format_threshold(threshold), verdict, why or "–", number(r.bpp),
                number(r.psnr, 1), f"{r.seconds:.1f}"]
            rows.append(row)
        headers = ["cell"] + (["test"] if several_tests else []) + [
            "attack", "accuracy", "95% CI", "n", "Δ pts", "threshold", "gate", "reasons", "bpp", "PSNR", "seconds"]
        title = "worst case (robust accuracy per defense)" if threat is Threat.WORST else threat
        lines += [f"### {title}", "", tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    return lines
