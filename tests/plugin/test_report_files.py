"""Report files: JSON, Markdown and plot after a run, failed cells, shared cells, selections and JUnit properties.

Runs that stop halfway and report folders that cannot be written are in reliability/test_faults.py.
"""
import json

#: Report wiring: the tiny model proves it as well as EfficientNet. It gets 31 of 32 digits right at JPEG q5 (and
#: every one at q50), so the cells that must miss a threshold of 0.999 are q5 on 32 digits.
TINY = "--hac-model=tiny-cnn"
RESULT_KEYS = {"codec", "quality", "rounds", "threat", "attack", "eps", "accuracy", "ci_low", "ci_high", "n", "bpp",
               "psnr", "seconds", "verdict", "test", "reasons", "attack_params"}


def test_report_files_after_a_full_run(suite, live_report_cells):
    p = suite(live_report_cells)
    result = p.runpytest(TINY, "--hac-samples=6")
    result.assert_outcomes(passed=3)
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert data["schema"] == 4 and data["model"] == "tiny-cnn" and data["dataset"] == "digits"
    assert data["n"] == 6 and data["device"] == "cpu" and data["complete"] is True and len(data["ids"]) == 6
    assert len(data["results"]) == 2
    for r in data["results"]:
        assert RESULT_KEYS <= set(r)
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"] and r["n"] == 6 and r["verdict"] == "passed"
        assert r["bpp"] > 0 and r["psnr"] > 20
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert md.startswith("# pytest-hac robustness report: tiny-cnn")
    assert "| codec" in md and "jpeg-q50-r1-clean" in md and "run complete" in md
    assert "![accuracy against bits per pixel](tiny-cnn.png)" in md
    assert (p.path / "reports/tiny-cnn.png").read_bytes()[:4] == b"\x89PNG"
    result.stdout.fnmatch_lines(["*pytest-hac*", "*jpeg*50*", "report (md): *tiny-cnn.md"])


def test_skipped_and_shared_cells_still_make_a_complete_run(suite):
    # The paper suite's shape: some cells skip by design, and two tests share a cell id.
    p = suite("""
import pytest

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["clean"])
def test_one(hac_case, hac_evaluate):
    hac_evaluate(hac_case)

@pytest.mark.hac(codecs={"jpeg": [50, 75]}, threats=["clean"])
def test_two(hac_case, hac_evaluate):
    if hac_case.quality == 75:
        pytest.skip("not for this model")
    hac_evaluate(hac_case)
""")
    p.runpytest(TINY, "--hac-samples=2").assert_outcomes(passed=2, skipped=1)
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert data["complete"] is True
    # one row per test: the shared cell appears once for each test that checked it
    assert [(r["case_id"], r["test"].split("::")[-1]) for r in data["results"]] == [
        ("jpeg-q50-r1-clean", "test_one[jpeg-q50-r1-clean]"), ("jpeg-q50-r1-clean", "test_two[jpeg-q50-r1-clean]")]


def test_failed_cells_are_marked_and_summarised(suite):
    p = suite("""
import pytest

@pytest.mark.hac(codecs={"jpeg": [5]}, threats=["clean"], min_accuracy=0.999)
def test_strict(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
""")
    result = p.runpytest(TINY, "--hac-samples=32")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*jpeg-q5-r1-clean: accuracy * is below the threshold 0.999 [gate rule point:*"])
    # the traceback points at the test, not at pytest-hac's result module
    result.stdout.fnmatch_lines(["test_cells.py:*: GateFailure"])
    assert "result.py" not in result.stdout.str()
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    cell = data["results"][0]
    assert cell["verdict"] == "failed" and data["gate_rule"] == "point" and cell["threshold"] == 0.999
    assert "applied_threshold" not in cell and "rule" not in cell  # held once: the cell's threshold, the run's rule
    assert [r["kind"] for r in cell["reasons"]] == ["threshold"]
    assert "below the threshold 0.999 [gate rule point" in cell["reasons"][0]["message"]
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "**failed** 1" in md and "**FAIL**" in md and "**below their threshold**" in md
    assert "< 0.999" in md and "< 1.00" not in md  # thresholds print as given
    assert "threshold: " in md and "❌ marks a failed cell" in md  # a reason column, the legend explained once
    # the news first: the failed cell, in red, linking to the cells, before the summary
    head = md.splitlines()[2:5]
    assert head[0] == "**🔴 1 thing to look at first:**"
    assert head[2].startswith("- 🔴 **FAILED** [`jpeg-q5-r1-clean`](#cells): ") and "below the threshold" in head[2]
    html = (p.path / "reports/tiny-cnn.html").read_text()
    assert html.index("<div id='news' class='news'>") < html.index("<ul id='summary'>")
    assert "<b>FAILED</b> <a href='#cell-jpeg-q5-r1-clean'>jpeg-q5-r1-clean</a>" in html


TWO_TESTS_ONE_CELL = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [5]}, threats=["clean"], min_accuracy=0.5)
def test_loose(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)

@pytest.mark.hac(codecs={"jpeg": [5]}, threats=["clean"], min_accuracy=0.999)
def test_tight(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""


def test_two_tests_on_one_cell_get_a_row_each(suite):
    p = suite(TWO_TESTS_ONE_CELL)
    p.runpytest(TINY, "--hac-samples=32").assert_outcomes(passed=1, failed=1)
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    verdicts = {r["test"].split("::")[-1].split("[")[0]: r["verdict"] for r in data["results"]}
    assert verdicts == {"test_loose": "passed", "test_tight": "failed"}
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "**cells** 2 · **passed** 1 · **failed** 1" in md
    assert "| test_loose" in md and "| test_tight" in md


def test_a_selection_is_complete_and_keeps_the_full_report(suite):
    p = suite(TWO_TESTS_ONE_CELL)
    p.runpytest(TINY, "--hac-samples=32").assert_outcomes(passed=1, failed=1)
    full = (p.path / "reports/tiny-cnn.json").read_text()
    p.runpytest(TINY, "--hac-samples=32", "-k", "loose").assert_outcomes(passed=1)
    assert (p.path / "reports/tiny-cnn.json").read_text() == full
    data = json.loads((p.path / "reports/tiny-cnn.selection.json").read_text())
    assert data["complete"] is True and data["scope"]["selected"] == 1 and data["scope"]["total"] == 2
    md = (p.path / "reports/tiny-cnn.selection.md").read_text()
    assert "run complete (selected 1 of 2 cells)" in md and "INCOMPLETE" not in md


def test_junit_properties_carry_the_result(suite, live_report_cells):
    p = suite(live_report_cells.split("def test_b")[0])
    p.runpytest(TINY, "--hac-samples=4", "--junitxml=out.xml").assert_outcomes(passed=2)
    xml = (p.path / "out.xml").read_text()
    assert 'name="hac_accuracy"' in xml and 'name="hac_ci_low"' in xml


def test_selected_run_writes_a_selection_report_beside_the_full_one(suite, four_clean_cells):
    p = suite(four_clean_cells)
    p.runpytest(TINY, "--hac-samples=4").assert_outcomes(passed=4)
    full = p.path / "reports/tiny-cnn.json"
    before, mtime = full.read_bytes(), full.stat().st_mtime_ns
    full_md = (p.path / "reports/tiny-cnn.md").read_bytes()

    p.runpytest(TINY, "--hac-samples=4", "-k", "q30").assert_outcomes(passed=1)
    data = json.loads((p.path / "reports/tiny-cnn.selection.json").read_text())
    assert [r["case_id"] for r in data["results"]] == ["jpeg-q30-r1-clean"]
    assert data["complete"] is True and data["scope"]["selected"] == 1 and data["scope"]["total"] == 4
    assert data["scope"]["shard"] is None
    assert "complete (selected 1 of 4 cells)" in (p.path / "reports/tiny-cnn.selection.md").read_text()
    assert full.read_bytes() == before and full.stat().st_mtime_ns == mtime
    assert (p.path / "reports/tiny-cnn.md").read_bytes() == full_md
