"""pytest-hac's section of pytest's terminal summary: the matrix, counts by verdict, warnings, notes."""
from __future__ import annotations

from ..report.notes import plural
from ..report.schema import Report
from ..run import HacRun


def terminal_summary(terminalreporter, run: HacRun, final: Report | None) -> None:
    """Write the section (the controller only); the report is the one written at session end."""
    if not run.write_files:
        return
    for warning in run.threshold_warnings:
        terminalreporter.write_line(f"pytest-hac: {warning}", yellow=True)
    if final is not None and final.error:  # pytest prints a usage error after this summary, other errors before
        where = "below" if final.error.startswith("usage error") else "above"
        terminalreporter.write_line(f"pytest-hac: the run ended in an error ({where}); the report says so: "
                                    + ", ".join(str(p) for p in run.files.paths.values()), red=True)
        return
    if not run.cells:
        return
    from tabulate import tabulate

    from ..report.view import matrix_table

    report = final or run.report(complete=True)
    headers, body = matrix_table(report)
    counts = report.counts
    terminalreporter.section("pytest-hac")
    if not report.complete:
        selected = report.scope.selected
        terminalreporter.write_line(
            f"pytest-hac: INCOMPLETE run (interrupted, stopped early or crashed): {counts['cells']}"
            + (f" of {selected}" if selected else "") + " cells finished; the counts below are of those only",
            red=True, bold=True)
    terminalreporter.write_line(
        f"model {run.settings.model} · {plural(counts['cells'], 'cell')}: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['measured']} measured (no threshold) · gate rule {run.settings.gate} · "
        f"soundness {run.settings.soundness} · run {report.status}")
    terminalreporter.write_line(tabulate(body, headers, tablefmt="simple", disable_numparse=True))
    for line in run.threshold_lines:
        terminalreporter.write_line(f"thresholds: {line}")
    if run.files.error:
        terminalreporter.write_line(f"pytest-hac: {run.files.error}", red=True)
    for cell in report.cells:
        for warning in cell.verdict.warnings:
            terminalreporter.write_line(f"pytest-hac: ⚑ {cell.case_id} (not failed: --hac-soundness=warn): "
                                        f"{warning}", yellow=True)
    for note in report.notes:
        terminalreporter.write_line(f"pytest-hac: {note}", yellow=True)
    for kind, path in run.files.paths.items():
        terminalreporter.write_line(f"report ({kind}): {path}")
