"""GitHub Actions' job summary: the full report or a short one appended to ``$GITHUB_STEP_SUMMARY``, never
failing the job."""
from __future__ import annotations

import os
from collections.abc import Mapping

from ..core.judge.result import format_threshold
from ..core.judge.stats import SIGNIFICANCE_LEVEL
from ..formats import TABLE_DIGITS, accuracy
from .markdown import markdown
from .news import news
from .schema import Report

STEP_SUMMARY_LIMIT = 1 << 20  # GitHub rejects step summaries over 1 MiB


def append_step_summary(text: str) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` when set; never fails the job (size capped at 1 MiB)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    data = text.encode("utf-8")
    if len(data) > STEP_SUMMARY_LIMIT - 1024:
        data = data[: STEP_SUMMARY_LIMIT - 1024].decode("utf-8", "ignore").encode() + b"\n\n(truncated)\n"
    try:
        with open(target, "ab") as fh:
            fh.write(data)
    except OSError:
        pass


#: GitHub events on which ``--hac-summary=auto`` writes the short summary.
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


def run_link(env: Mapping[str, str] | None = None) -> str | None:
    """The address of this GitHub Actions run (its page lists the uploaded artifacts), or None elsewhere."""
    env = os.environ if env is None else env
    if not (env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID")):
        return None
    return f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}/actions/runs/" \
           f"{env['GITHUB_RUN_ID']}"


def short_summary(report: Report, env: Mapping[str, str] | None = None) -> str:
    """What a reviewer needs from a run: failed cells with their reasons, regressions, soundness findings,
    and a link line to the full report (the run's artifacts on GitHub Actions, else the report's file)."""
    c = report.counts
    lines = [f"### pytest-hac: {report.model} · {c['failed']} of {c['cells']} cells failed · run {report.status}", ""]
    if report.error:
        lines += [f"**The run ended in an error**: {report.error}", ""]
    failed = [cell for cell in report.cells if cell.failed]
    if failed:
        lines += ["| cell | accuracy [95% CI] | threshold | reasons |", "|---|---|---|---|"]
        for cell in sorted(failed, key=lambda x: x.case_id):
            r = cell.result
            why = "; ".join(str(x) for x in cell.reasons) or "the test failed"
            threshold = "–" if cell.threshold is None else format_threshold(cell.threshold)
            lines.append(f"| `{r.case_id}` | {accuracy(r.accuracy, r.ci_low, r.ci_high, TABLE_DIGITS)} | {threshold} | "
                         f"{why.replace('|', '/')} |")
        lines.append("")
    drops = [cell for cell in report.cells if cell.comparison is not None and cell.comparison.comparable
             and cell.comparison.p_drop < SIGNIFICANCE_LEVEL]
    if drops:
        lines.append("**Regressions against the baseline** (significant drops on shared images):")
        lines += [f"- `{cell.case_id}` {cell.comparison.baseline:.3f} -> {cell.comparison.current:.3f} "
                  f"({cell.comparison.delta_points:+.1f} points, p={cell.comparison.p_drop:.2g})"
                  + (" beyond the allowed margin" if cell.comparison.regression else "") for cell in drops]
        lines.append("")
    findings = report.findings
    if findings:
        lines.append("**Soundness findings:**")
        lines += [f"- `{f.check}`: {f.message}" for f in findings]
        lines.append("")
    if not (failed or drops or findings or report.error):
        lines += [f"No cell of {c['cells']} failed; no regression, no soundness finding.", ""]
    link = run_link(env)
    where = f"[the run's page]({link}) (artifacts)" if link else f"`{report.stem}.md` in the report folder"
    lines.append(f"Full report (matrix, every cell, plot): {where}.")
    return "\n".join(lines) + "\n"


def step_summary(report: Report, mode: str = "auto", env: Mapping[str, str] | None = None) -> str:
    """The step summary ``--hac-summary`` asks for: ``short``, ``full``, or ``auto`` (short on pull-request events)."""
    env = os.environ if env is None else env
    if mode == "auto":
        mode = "short" if env.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS else "full"
    return short_summary(report, env) if mode == "short" else markdown(report, plot_name=None, news=news(report))
