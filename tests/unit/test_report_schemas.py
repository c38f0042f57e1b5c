"""One record per cell (schema 4): a result holds its case, the case holds the threshold and the gate rule once.
Reports, baselines and history entries written by schema 3 (pytest-hac at cae84fe, files in ``data/``) still load,
show what they showed, compare with today's runs and trend together with them."""
import json
import shutil
from dataclasses import fields, replace
from pathlib import Path

from pytest_hac.__main__ import main as hac_main
from pytest_hac.core.judge.result import Result
from pytest_hac.core.judge.verdict import decide
from pytest_hac.plugin.cells import CellMessage
from pytest_hac.report.history import load_history, record_history
from pytest_hac.report.output import write_report
from pytest_hac.report.schema import SCHEMA, Cell, Report, load_report

DATA = Path(__file__).parent / "data"
#: Written at cae84fe (schema 3): three cells under the lenient rule, two with thresholds (one missed), one flagged.
SCHEMA3 = DATA / "report_schema3.json"
#: Three history entries written at cae84fe: the clean cell loses an image a run; the oblivious cell a reference.
HISTORY3 = DATA / "history_schema3"
CLEAN = "jpeg-q50-r1-clean"


def _worse(result: Result, k: int) -> Result:
    """``result`` with ``k`` more of its right images wrong."""
    correct = list(result.correct)
    for i in [i for i, c in enumerate(correct) if c][:k]:
        correct[i] = False
    return Result.from_correct(correct, result.case, bpp=result.bpp, psnr=result.psnr, seconds=result.seconds,
                               ids=result.ids, median_l2=result.median_l2, diagnostics=result.diagnostics)


def _today(report: Report, k: int) -> Report:
    """``report`` as this version would write it, its clean cell ``k`` images worse."""
    cells = [replace(c, result=_worse(c.result, k)) if c.case_id == CLEAN else c for c in report.cells]
    return replace(report, cells=cells, findings=None, checks=None)


def test_a_result_holds_its_case_and_the_measurements_only():
    assert [f.name for f in fields(Result)] == ["case", "accuracy", "n", "ci_low", "ci_high", "bpp", "psnr",
                                                "seconds", "correct", "ids", "median_l2", "diagnostics"]
    assert [f.name for f in fields(Cell)] == ["test", "result", "verdict", "comparison", "findings"]


def test_a_schema3_report_loads_with_its_gate_held_once():
    written = json.loads(SCHEMA3.read_text(encoding="utf-8"))
    assert written["schema"] == 3 and written["gate_rule"] == "lenient"
    rep = load_report(SCHEMA3)
    for raw in written["results"]:
        cell = next(c for c in rep.cells if c.test == raw["test"])
        assert cell.case_id == raw["case_id"] and cell.result.accuracy == raw["accuracy"]
        assert cell.threshold == cell.result.threshold == raw["threshold"] == raw["applied_threshold"]
        assert cell.case.rule == cell.result.rule == raw["rule"] == "lenient"
        assert cell.status.value == raw["verdict"]
        assert [r.message for r in cell.reasons] == [r["message"] for r in raw["reasons"]]
        # the loaded cell carries the findings that decided it: deciding it again gives the verdict it was written with
        assert decide(cell.result, findings=cell.findings) == cell.verdict
    flagged = {c.case_id: [f.check for f in c.findings] for c in rep.cells}
    assert flagged == {CLEAN: [], "jpeg-q50-r1-oblivious-pgd": [],
                       "jpeg-q50-r1-whitebox-pgd": ["informed-not-weaker"]}
    assert [c.status.value for c in sorted(rep.cells, key=lambda c: c.case_id)] == ["passed", "failed", "failed"]


def test_a_schema3_report_is_written_back_with_each_fact_once():
    written = json.loads(SCHEMA3.read_text(encoding="utf-8"))
    again = load_report(SCHEMA3).to_dict()
    assert again["schema"] == SCHEMA == 4 and again["gate_rule"] == "lenient"
    for old, new in zip(written["results"], again["results"]):
        assert set(old) - set(new) == {"rule", "applied_threshold"} and set(new) <= set(old)
        assert {k: v for k, v in old.items() if k in new} == new
    assert Report.from_dict(json.loads(json.dumps(again))).to_dict() == again


def test_a_schema3_report_renders_as_it_did(tmp_path):
    """The Markdown and the page a schema-3 report gave when it was written, word for word."""
    paths = write_report(load_report(SCHEMA3), tmp_path)
    assert paths["md"].read_text(encoding="utf-8") == (DATA / "report_schema3.md").read_text(encoding="utf-8")
    assert paths["html"].read_text(encoding="utf-8") == (DATA / "report_schema3.html").read_text(encoding="utf-8")


def test_compare_between_a_schema3_and_a_schema4_report(tmp_path, capsys):
    new = write_report(_today(load_report(SCHEMA3), 3), tmp_path)["json"]
    assert json.loads(new.read_text(encoding="utf-8"))["schema"] == 4
    assert hac_main(["compare", str(SCHEMA3), str(new)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("`")[1]: line for line in out.splitlines() if line.startswith("| `")}
    assert set(rows) == {CLEAN, "jpeg-q50-r1-oblivious-pgd", "jpeg-q50-r1-whitebox-pgd"}
    assert "-25.0" in rows[CLEAN] and "12/12" in rows[CLEAN]
    assert "no significant change" in rows["jpeg-q50-r1-whitebox-pgd"]
    assert hac_main(["compare", str(new), str(SCHEMA3), "--fail", "50"]) == 0  # either way round


def test_trend_over_a_history_mixing_schema3_and_schema4(tmp_path, capsys):
    history = tmp_path / "history"
    shutil.copytree(HISTORY3, history)
    newest = load_report(sorted(history.glob("*.json"))[-1])
    assert record_history(_today(newest, 1), history, cwd=tmp_path) is not None
    schemas = [json.loads(p.read_text(encoding="utf-8"))["schema"] for p in sorted(history.glob("*.json"))]
    assert schemas == [3, 3, 3, 4]
    entries, notes = load_history(history)
    assert notes == [] and [e.report.cells[0].result.correct_count for e in entries] == [11, 10, 9, 8]
    assert {r.case_id for e in entries for r in e.report.references} == {"jpeg-q50-r1-oblivious-pgd"}
    out = tmp_path / "out"
    assert hac_main(["trend", str(history), "-o", str(out)]) == 0
    table = (out / "tiny-cnn.trend.md").read_text(encoding="utf-8")
    row = next(line for line in table.splitlines() if line.startswith(f"| `{CLEAN}`"))
    assert "over the last 4 run(s)" in table and "| 0.92 | 0.83 | 0.75 | 0.67 | -25.0 " in row
    assert table.count("| yes ") == 4  # every run compared with the one before, across the schemas


def test_the_wire_message_carries_the_gate_rule_and_the_findings():
    """Under xdist a decided cell reaches the controller whole: its case's rule and its findings travel beside
    the record the report writes."""
    rep = load_report(SCHEMA3)
    cell = next(c for c in rep.cells if c.findings)
    back = CellMessage.from_dict(json.loads(json.dumps(CellMessage(cell, references=[rep.cells[0].result]).to_dict())))
    assert back.cell == cell and back.cell.case.rule == "lenient" and back.cell.findings == cell.findings
    assert back.references[0].rule == "lenient"
