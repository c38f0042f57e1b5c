"""--hac-history on a real run: each complete run adds one entry (a selection adds none), the trend CLI reads
them, and a pull request's step summary is the short one."""
import json

from pytest_hac.__main__ import main as hac_main

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 75]}, threats=["clean"], min_accuracy=0.5)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""
TINY = ["--hac-model=tiny-cnn", "--hac-data=digits", "--hac-samples=16", "-p", "no:cacheprovider"]


def test_each_complete_run_adds_one_history_entry(suite, monkeypatch, capsys):
    p = suite(CELLS, "hac_history = .hac/history")  # the ini spelling; relative to the rootdir
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(p.path / "summary.md"))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    p.runpytest(*TINY).assert_outcomes(passed=2)
    p.runpytest(*TINY).assert_outcomes(passed=2)
    p.runpytest(*TINY, "-k", "q30").assert_outcomes(passed=1, deselected=1)  # a selection is not the whole run
    history = p.path / ".hac/history"
    entries = sorted(history.glob("*.json"))
    assert len(entries) == 2 and all("-tiny-cnn" in e.name for e in entries)
    data = json.loads(entries[-1].read_text())
    report = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert {k: v for k, v in data.items() if k != "run"} == report and data["complete"] is True
    assert data["run"]["date"] and "versions" in data["meta"]
    summary = (p.path / "summary.md").read_text()
    assert summary.startswith("### pytest-hac: tiny-cnn · 0 of 2 cells failed") and "## Matrix" not in summary
    capsys.readouterr()
    assert hac_main(["trend", str(history), "-o", str(p.path / "trend")]) == 0
    assert "over the last 2 run(s)" in capsys.readouterr().out
    assert (p.path / "trend/tiny-cnn.trend.png").is_file()
