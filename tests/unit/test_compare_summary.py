"""`pytest-hac compare OLD NEW` (the baseline gate's paired test, offline) and the short step summary."""
import pytest

from pytest_hac.__main__ import main as hac_main
from pytest_hac.core.judge.comparison import compare
from pytest_hac.core.judge.verdict import Reason, ReasonKind, Status, Verdict
from pytest_hac.report.output import write_report
from pytest_hac.report.schema import Cell
from pytest_hac.report.summary import short_summary, step_summary

N = 100
GITHUB = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "team/model", "GITHUB_RUN_ID": "42"}


def _write(synthetic, tmp_path, name, cells, **kw):
    rep = synthetic.report(cells, **kw)
    write_report(rep, tmp_path / name)
    return tmp_path / name / f"{rep.stem}.json"


@pytest.fixture
def runs(synthetic, tmp_path):
    """OLD and NEW: cell A drops 10 points (10 images turn wrong), B is unchanged, C only in OLD, D only in NEW."""
    a, b = [i < 90 for i in range(N)], [i < 80 for i in range(N)]
    old = _write(synthetic, tmp_path, "old", {"a": a, "b": b, "c": b})
    new = _write(synthetic, tmp_path, "new", {"a": [i < 80 for i in range(N)], "b": b, "d": b})
    return old, new


def test_compare_prints_the_paired_test_per_cell(runs, capsys, synthetic):
    old, new = runs
    assert hac_main(["compare", str(old), str(new)]) == 0  # without --fail a drop is shown, never fatal
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| `a`"))
    p = compare(synthetic.result("a", [i < 80 for i in range(N)]), [synthetic.result("a", [i < 90 for i in range(N)])])
    assert "-10.0" in row and "100/100" in row and f"{p.p_drop:.3g}" in row and "significant drop" in row
    assert "no significant change" in next(line for line in out.splitlines() if line.startswith("| `b`"))
    assert "only in OLD" in out and "only in NEW" in out


@pytest.mark.parametrize("fail, status", [("5", 1), ("15", 0)])
def test_compare_fails_on_a_significant_drop_beyond_the_margin(runs, capsys, fail, status):
    old, new = runs
    assert hac_main(["compare", str(old), str(new), "--fail", fail]) == status
    assert ("REGRESSION" in capsys.readouterr().out) == (status == 1)


def test_compare_fails_on_an_incomparable_cell_and_refuses_other_models(tmp_path, synthetic, capsys):
    cells = {"a": [i < 90 for i in range(N)]}
    old = _write(synthetic, tmp_path, "old", cells)
    weaker = _write(synthetic, tmp_path, "weak", cells, attack={**synthetic.PGD, "steps": 2})
    assert hac_main(["compare", str(old), str(weaker)]) == 0
    assert hac_main(["compare", str(old), str(weaker), "--fail", "2"]) == 1
    assert "the attack differs" in capsys.readouterr().out
    other = _write(synthetic, tmp_path, "other", cells, model="resnet50")
    assert hac_main(["compare", str(old), str(other)]) == 2
    assert "different model" in capsys.readouterr().err
    assert hac_main(["compare", str(old), str(tmp_path / "missing.json")]) == 2


PASSED = Verdict(Status.PASSED)


def _mixed_run(synthetic):
    """One passing cell, one below its threshold, one regressed against the baseline, a 100-query Square cell."""
    right = [i < 70 for i in range(N)]
    ok = Cell("t.py::test[jpeg-q75-r1-clean]", synthetic.result("jpeg-q75-r1-clean", right, threat="clean"), PASSED)
    low = Cell("t.py::test[jpeg-q25-r1-oblivious-pgd]",
               synthetic.result("jpeg-q25-r1-oblivious-pgd", right, threshold=0.8),
               Verdict(Status.FAILED, (Reason(ReasonKind.THRESHOLD, "0.700 < 0.8 (point rule)"),)))
    old, new = synthetic.result("x", [i < 90 for i in range(N)]), synthetic.result("x", right)
    regressed = Cell("t.py::test[jpeg-q50-r1-oblivious-pgd]", synthetic.result("jpeg-q50-r1-oblivious-pgd", right),
                     Verdict(Status.FAILED, (Reason(ReasonKind.REGRESSION, "dropped 20.0 points"),)),
                     compare(new, [old], 2))
    square = {"name": "square", "norm": "Linf", "eps": 4 / 255, "steps": 100, "queries": 100, "restarts": 1}
    query = Cell("t.py::test[jpeg-q50-r1-query-square]",
                 synthetic.result("jpeg-q50-r1-query-square", right, threat="query", attack=square), PASSED)
    return synthetic.report([ok, low, regressed, query])


def test_short_summary_holds_only_what_needs_a_look(synthetic):
    rep = _mixed_run(synthetic)
    text = short_summary(rep, env=GITHUB)
    assert "2 of 4 cells failed" in text
    assert "`jpeg-q25-r1-oblivious-pgd` | 0.700" in text and "threshold: 0.700 < 0.8" in text
    assert "Regressions against the baseline" in text and "0.900 -> 0.700 (-20.0 points" in text
    assert "`query-budget`" in text and "100 queries" in text
    assert "jpeg-q75-r1-clean" not in text  # a passing cell is not news
    assert text.rstrip().endswith("[the run's page](https://github.com/team/model/actions/runs/42) (artifacts).")
    full = step_summary(rep, "full", env=GITHUB)
    assert full.startswith("# pytest-hac robustness report") and len(text) < len(full) / 3


def test_short_summary_of_a_clean_run_and_the_auto_mode(synthetic):
    rep = synthetic.report({"jpeg-q50-r1-clean": [True] * 8})
    text = short_summary(rep, env={})
    assert "No cell of 1 failed" in text and "`tiny-cnn.md` in the report folder" in text
    assert step_summary(rep, "auto", env={"GITHUB_EVENT_NAME": "pull_request", **GITHUB}).startswith("### ")
    assert step_summary(rep, "auto", env={"GITHUB_EVENT_NAME": "schedule"}).startswith("# pytest-hac")
    assert step_summary(rep, "short", env={"GITHUB_EVENT_NAME": "push"}).startswith("### ")
