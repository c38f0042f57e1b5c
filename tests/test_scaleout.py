"""xdist workers and CI shards produce the same report as one serial run."""
import json

import pytest

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90], "identity": []}, threats=["clean"], min_accuracy=0.3)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""


def _cells(path):
    data = json.loads(path.read_text())
    return {r["case_id"]: (r["accuracy"], r["correct"], r["bpp"], r["passed"]) for r in data["results"]}, data


def test_xdist_report_equals_serial(suite):
    p = suite(CELLS)
    p.runpytest("--hac-samples=6", "--hac-report-dir=serial").assert_outcomes(passed=4)
    result = p.runpytest_subprocess("-n", "2", "--hac-samples=6", "--hac-report-dir=parallel")
    result.assert_outcomes(passed=4)
    serial, _ = _cells(p.path / "serial/efficientnet-lite0.json")
    parallel, data = _cells(p.path / "parallel/efficientnet-lite0.json")
    assert parallel == serial and data["complete"] is True and data["n"] == 6


def test_shards_merge_into_the_full_run(suite):
    from pytest_hac.__main__ import main

    p = suite(CELLS)
    p.runpytest("--hac-samples=6", "--hac-report-dir=full").assert_outcomes(passed=4)
    p.runpytest("--hac-samples=6", "--hac-shard=1/2", "--hac-report-dir=s1").assert_outcomes(passed=2)
    p.runpytest("--hac-samples=6", "--hac-shard=2/2", "--hac-report-dir=s2").assert_outcomes(passed=2)
    code = main(["merge", str(p.path / "s1/efficientnet-lite0.json"), str(p.path / "s2/efficientnet-lite0.json"),
                 "-o", str(p.path / "merged")])
    assert code == 0
    full, _ = _cells(p.path / "full/efficientnet-lite0.json")
    merged, _ = _cells(p.path / "merged/efficientnet-lite0.json")
    assert merged == full


def test_merge_refuses_reports_of_different_models(tmp_path, capsys):
    from pytest_hac.__main__ import main
    from pytest_hac.report import Report, write_report

    for name in ("a", "b"):
        write_report(Report(model=name, dataset="embedded", n=1, device="cpu", seed=0, gate_rule="ci"), tmp_path)
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m")]) == 2
    assert "different model" in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["0/2", "3/2", "x"])
def test_bad_shard_is_a_usage_error(suite, shard):
    result = suite(CELLS).runpytest(f"--hac-shard={shard}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hac-shard*"])
