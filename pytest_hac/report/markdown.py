"""The report as Markdown (tabulate tables) and the terminal's matrix."""
from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

from ..attacks import Threat
from ..attacks.threats import rank
from ..core.result import GATE_RULES, Result, format_threshold
from ..core.soundness import CHECKS, SOUNDNESS_MODES, STAND_IN_DISTANCE, check, status, worst_case
from ..core.stats import SIGNIFICANCE_LEVEL
from ..core.verdict import Status
from .notes import backward_note
from .schema import Cell, Report

VERDICT_SHOWN = {Status.PASSED: "pass", Status.FAILED: "**FAIL**", Status.MEASURED: "measured"}

#: Below this side a JPEG's ~600-byte header dominates its bits per pixel.
SMALL_IMAGE = 64
LEGEND = ("Accuracy is top-1 with its 95% Wilson interval in brackets. ❌ marks a failed cell (its reasons are in the "
          "Cells tables), ⚑ a cell a soundness check flagged under `--hac-soundness=warn`; a cell without a threshold "
          "is *measured*: reported, not gated. *partial* marks a worst case computed before all of its cells ran (an "
          "incomplete run, a shard or a selection). Δ is the change against the baseline in percentage points, on "
          "the images both runs share; ⚠ marks a significant drop beyond `--hac-fail-drop`. *worst case* counts "
          "an image only if the defense gets it right clean and under every attack tried (robust accuracy). bpp and "
          "PSNR are measured on the decoded images of each defense's clean cell (PSNR against the clean originals).")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _defense_key(r: Result) -> tuple:
    return (r.codec, -1 if r.quality is None else r.quality, r.rounds)


def _delta(cell: Cell) -> str:
    c = cell.comparison
    if c is None:
        return ""
    if not c.comparable:
        return " (Δ n/a)"
    flag = " ⚠" if c.regression else ""
    return f" (Δ {c.delta_points:+.1f}{flag})"


def columns(results: list[Result]) -> dict[tuple, str]:
    """Matrix column per threat x full attack, in threat order; labels grow only where two would collide."""
    keys: dict[tuple, Result] = {}
    for r in sorted(results, key=lambda r: (rank(r.threat), r.attack or "", r.eps or 0)):
        keys.setdefault(column_key(r), r)
    short = {k: ("worst case" if r.threat is Threat.WORST else str(r.threat) if r.spec is None
                 else f"{r.threat} {r.attack} {r.spec.eps_label}") for k, r in keys.items()}
    clash = {label for label in short.values() if list(short.values()).count(label) > 1}
    return {k: (f"{r.threat} {r.spec.describe()}" if short[k] in clash else short[k]) for k, r in keys.items()}


def column_key(r: Result) -> tuple:
    """A matrix column: the threat and the whole attack."""
    return (r.threat, r.spec)


def computed_worst(report: Report) -> list[Cell]:
    """Worst cases of defenses without a worst cell of their own, computed from the report's cells."""
    gated = {c.result.defense for c in report.cells if c.result.threat is Threat.WORST}
    return [Cell(test="", result=r) for r in worst_case(report.results) if r.defense not in gated]


def partial(report: Report) -> bool:
    """Worst cases computed from this report may lack cells that did not run (yet, or here)."""
    return not report.whole


def matrix_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Rows codec/quality/rounds; columns bpp, PSNR, one accuracy column per threat x attack, worst case."""
    cells = list(report.cells)
    extra = computed_worst(report)
    cells += extra
    cols = columns([c.result for c in cells])
    failed, warned = defaultdict(bool), defaultdict(bool)
    for c in cells:
        failed[c.case_id] |= c.failed
        warned[c.case_id] |= bool(c.verdict.warnings)
    unfinished = partial(report)
    rows: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for c in cells:
        r = c.result
        row = rows[_defense_key(r)]
        row[cols[column_key(r)]] = (f"{r.accuracy:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]{_delta(c)}"
                                     + (" ❌" if failed[c.case_id] else "") + (" ⚑" if warned[c.case_id] else "")
                                     + (" *partial*" if c in extra and unfinished else ""))
        source = r.threat
        if r.bpp is not None and (r.threat is Threat.CLEAN or "bpp" not in row):
            row["bpp"], row["psnr"], row["source"] = r.bpp, r.psnr, source
    headers = ["codec", "quality", "rounds", "bpp", "PSNR dB"] + list(dict.fromkeys(cols.values()))
    body = []
    for key in sorted(rows):
        row = rows[key]
        note = "" if row.get("source") in (None, Threat.CLEAN) else f" ({row['source']})"
        q = "–" if key[1] == -1 else str(key[1])
        body.append([key[0], q, str(key[2]), _fmt(row.get("bpp")) + note, _fmt(row.get("psnr"), 1) + note]
                    + [row.get(c, "") for c in headers[5:]])
    return headers, body


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
    findings = check(results)
    states = status(results, findings)
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
                attack, f"{r.accuracy:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]", r.n, delta,
                "–" if threshold is None else format_threshold(threshold), verdict, why or "–", _fmt(r.bpp),
                _fmt(r.psnr, 1), f"{r.seconds:.1f}"]
            rows.append(row)
        headers = ["cell"] + (["test"] if several_tests else []) + [
            "attack", "accuracy", "95% CI", "n", "Δ pts", "threshold", "gate", "reasons", "bpp", "PSNR", "seconds"]
        title = "worst case (robust accuracy per defense)" if threat is Threat.WORST else threat
        lines += [f"### {title}", "", tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    return lines
