"""--hac-history on a real run: each complete run adds one entry (a selection adds none), the trend CLI reads
them, and a pull request's step summary is the short one."""
import base64
import json
import re

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


def test_the_html_page_shows_the_trend_once_there_are_two_runs(suite):
    p = suite(CELLS)
    args = [*TINY, "--hac-history=hist"]
    p.runpytest(*args).assert_outcomes(passed=2)
    page = p.path / "reports/tiny-cnn.html"
    assert "id='trend'" not in page.read_text(encoding="utf-8")  # one run: no trend yet (the Markdown says so)
    p.runpytest(*args).assert_outcomes(passed=2)
    text = page.read_text(encoding="utf-8")
    assert "<h2 id='trend'>Trend over the last 2 runs</h2>" in text and "<table id='trend-table'>" in text
    # the same cells as the Markdown's trend section, each linking to its row of the page
    markdown = (p.path / "reports/tiny-cnn.md").read_text(encoding="utf-8")
    assert "## Trend: tiny-cnn over the last 2 run(s)" in markdown
    for case_id in ("jpeg-q30-r1-clean", "jpeg-q75-r1-clean"):
        assert f"| `{case_id}` |" in markdown and f"<a href='#cell-{case_id}'>{case_id}</a>" in text
    assert "no cell dropped significantly over the window" in text and "not compared:" not in text
    # the trend's PNG is inlined beside the accuracy-vs-bpp plot
    pngs = re.findall(r"<img id='(plot|trend)-image' [^>]*src='data:image/png;base64,([^']+)'", text)
    assert [name for name, _ in pngs] == ["plot", "trend"]
    assert base64.b64decode(pngs[1][1]).startswith(b"\x89PNG")
    assert page.stat().st_size < 2_000_000
