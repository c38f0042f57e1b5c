"""What a report derives from its cells (soundness findings, check states, worst cases) is derived once, when
it is built, kept typed, written to the JSON and read back; every rendering reads it and none derives it again."""
import ast
import json
from dataclasses import replace
from pathlib import Path

from pytest_hac.core.judge.soundness import CHECK_NAMES, Finding
from pytest_hac.report.schema import Report, load_report

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_hac"
#: Written by pytest-hac's main at 42c9d98 (before findings were typed): a complete run with one finding.
MAIN_REPORT = Path(__file__).parent / "data" / "report_main_42c9d98.json"


def test_a_report_written_before_typed_findings_loads_with_them_typed():
    rep = load_report(MAIN_REPORT)
    (finding,) = rep.findings
    assert isinstance(finding, Finding) and finding.check == "informed-not-weaker"
    assert finding.cells == ("jpeg-q50-r1-whitebox-pgd", "jpeg-q50-r1-oblivious-pgd")
    assert finding.implicated == ("jpeg-q50-r1-whitebox-pgd",) and finding.implicates("jpeg-q50-r1-whitebox-pgd")
    assert rep.checks["informed-not-weaker"] == "flagged" and set(rep.checks) == set(CHECK_NAMES)
    assert "soundness" not in rep.meta  # held once: as typed fields, written back where the file had it
    written = json.loads(MAIN_REPORT.read_text(encoding="utf-8"))
    assert rep.to_dict()["meta"]["soundness"] == written["meta"]["soundness"]


def test_findings_round_trip_through_the_json_as_written_not_as_found_again():
    rep = load_report(MAIN_REPORT)
    kept = Finding("monotone-in-eps", ("a", "b"), 'a "quoted" message', implicated=("b",))
    rep = replace(rep, findings=(kept,), checks=None)  # what a run decided, whatever the checks find today
    again = Report.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again.findings == (kept,) and again.checks["monotone-in-eps"] == "flagged"


def test_worst_cases_are_derived_when_the_report_is_built(synthetic):
    rep = load_report(MAIN_REPORT)
    (worst,) = rep.worst
    assert worst.case_id == "jpeg-q50-r1-worst" and worst.correct == (True, True) + (False,) * 10
    assert synthetic.report({}).worst == () and synthetic.report({}).findings == ()


def test_every_rendering_shows_the_reports_findings(tmp_path):
    from pytest_hac.report.html import page
    from pytest_hac.report.markdown import markdown
    from pytest_hac.report.news import news
    from pytest_hac.report.summary import short_summary

    planted = Finding("query-budget", ("jpeg-q50-r1-clean",), "planted: only the report knows this")
    rep = replace(load_report(MAIN_REPORT), findings=(planted,), checks=None)
    assert [i.text for i in news(rep) if i.kind == "soundness"] == [f"`query-budget`: {planted.message}"]
    md = markdown(rep, news=news(rep))
    assert f"- `query-budget`: {planted.message}" in md and "- `query-budget` (" in md and "**FLAGGED**" in md
    assert "informed-not-weaker`:" not in md  # the checks are not run again
    assert planted.message in short_summary(rep, env={}) and planted.message in page(rep)


def test_no_rendering_summary_or_command_derives_findings_or_worst_cases():
    derived = {"check", "status", "worst_case", "ran"}
    offenders = []
    for path in [*sorted((PACKAGE / "report").glob("*.py")), *sorted((PACKAGE / "plugin").glob("*.py")),
                 PACKAGE / "__main__.py", *sorted((PACKAGE / "run").glob("*.py"))]:
        if path.name == "schema.py":  # where a report is built
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("judge.soundness"):
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name in derived]
    # the run decides a verdict with the checks (once, in the cell's test): it is the one caller outside the schema
    assert offenders == ["hac_run.py: check"]


def test_one_view_for_every_matrix(synthetic):
    """The Markdown matrix, the page's matrix and the terminal's name and order rows and columns alike."""
    from pytest_hac.report.html import matrix_html
    from pytest_hac.report.view import matrix, matrix_table

    rep = load_report(MAIN_REPORT)
    headers, body = matrix_table(rep)
    view = matrix(rep)
    assert headers[5:] == view.headers == ["clean", "oblivious pgd 4/255", "whitebox pgd 4/255", "worst case"]
    assert body == [["jpeg", "50", "1", "1.00", "30.0", "0.92 [0.65, 0.99]", "0.17 [0.05, 0.45]",
                     "0.92 [0.65, 0.99] ❌", "0.17 [0.05, 0.45]"]]
    html = matrix_html(rep)
    assert all(f"<th>{h}</th>" in html for h in view.headers) and "0.92 [0.65, 0.99] ✗" in html
