"""A run that cannot evaluate says so once, as a usage error, and the report on disk says it too: never a
stale green report from an earlier run, never one failure per cell for a configuration error."""
import json

import pytest

TINY = ("--hac-model=tiny-cnn", "--hac-samples=8")
CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50, 75]}, threats=["clean"], min_accuracy=0.1)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
BROKEN_FACTORY = """
def build():
    raise RuntimeError("weights file is corrupt")
"""


@pytest.fixture
def green(suite, pytester, monkeypatch, tmp_path):
    """A project whose last run passed: reports/tiny-cnn.md says so."""
    p = suite(CELLS)
    pytester.makepyfile(usermodels=BROKEN_FACTORY)
    pytester.syspathinsert()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    p.runpytest(*TINY).assert_outcomes(passed=2)
    assert "**passed** 2" in (p.path / "reports/tiny-cnn.md").read_text()
    (tmp_path / "summary.md").unlink()
    return p


@pytest.mark.parametrize("args, said", [
    (("--hac-samples=5000",), "--hac-samples=5000 is larger than data set 'digits'"),
    (("--hac-thresholds=t.toml",), "patterns ['jpeg-q99-*'] match no cell"),
])
def test_a_configuration_error_is_one_usage_error_and_the_report_says_so(green, tmp_path, args, said):
    (green.path / "t.toml").write_text('[tiny-cnn]\n"jpeg-q99-*" = 0.5\n')
    result = green.runpytest("--hac-model=tiny-cnn", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.parseoutcomes().get("failed") is None  # not one failure per cell
    md = (green.path / "reports/tiny-cnn.md").read_text()
    data = json.loads((green.path / "reports/tiny-cnn.json").read_text())
    assert "**ERROR**" in md and said in md and "**passed** 0" in md
    assert data["error"].startswith("usage error") and said in data["error"] and data["results"] == []
    reports = green.path / "reports"
    assert "**passed** 2" in (reports / "tiny-cnn.previous.md").read_text()  # the last complete report stays
    assert json.loads((reports / "tiny-cnn.previous.json").read_text())["complete"] is True
    assert said in (tmp_path / "summary.md").read_text()
    # a second failed run keeps the last complete report, not the ERROR one
    assert green.runpytest("--hac-model=tiny-cnn", *args).ret == pytest.ExitCode.USAGE_ERROR
    assert "**passed** 2" in (reports / "tiny-cnn.previous.md").read_text()
    assert sorted(p.name for p in reports.iterdir()) == [
        f"tiny-cnn{tag}.{ext}" for tag in ("", ".previous") for ext in ("html", "json", "md")] + [
        "tiny-cnn.previous.png"]


def test_a_factory_that_raises_is_said_once(green):
    result = green.runpytest("--hac-model=usermodels:build", "--hac-data=digits", "--hac-samples=8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert out.count("weights file is corrupt") == 1 and "During handling" not in out
    # pytest prints a usage error after the terminal summary: the summary points down to it
    assert out.index("the run ended in an error (below)") < out.index("ERROR: pytest-hac: --hac-model=")
    md = (green.path / "reports/usermodels_build.md").read_text()
    assert "**ERROR**" in md and "the factory raised RuntimeError: weights file is corrupt" in md


def test_a_selection_leaves_the_full_report_as_it_was(green):
    before = (green.path / "reports/tiny-cnn.md").read_text()
    green.runpytest(*TINY, "-k", "q50").assert_outcomes(passed=1)
    assert (green.path / "reports/tiny-cnn.md").read_text() == before
    assert "selected 1 of 2" in (green.path / "reports/tiny-cnn.selection.md").read_text()


@pytest.mark.parametrize("args", [(), ("-n", "1")], ids=["one-process", "xdist"])
def test_a_session_without_cells_leaves_the_reports_as_they_were(green, args):
    """Running the project's other tests (or a -k that selects no cell) must not replace the last report."""
    green.makepyfile(test_plain="def test_plain():\n    assert True\n")
    before = {p.name: p.read_bytes() for p in (green.path / "reports").iterdir()}
    green.runpytest(*TINY, "test_plain.py", *args).assert_outcomes(passed=1)
    assert {p.name: p.read_bytes() for p in (green.path / "reports").iterdir()} == before
    green.runpytest(*TINY, "-k", "no_such_cell")
    assert {p.name: p.read_bytes() for p in (green.path / "reports").iterdir()} == before
