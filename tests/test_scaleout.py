"""xdist workers and CI shards produce the same report as one serial run; merge refuses what does not fit."""
import json
import os

import pytest

from pytest_hac.__main__ import main as hac_main
from pytest_hac.core.result import Result
from pytest_hac.report.output import write_report
from pytest_hac.report.schema import Cell, Report, Scope

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90], "identity": []}, threats=["clean"], min_accuracy=0.3)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""
MODEL = "efficientnet-lite0"


def _cells(path):
    """test id -> what a run measured and decided, and the whole JSON."""
    data = json.loads(path.read_text())
    cells = {r["test"]: (r["case_id"], r["accuracy"], r["correct"], r["bpp"], r["passed"]) for r in data["results"]}
    return cells, data


def _merge(*args) -> int:
    return hac_main(["merge", *map(str, args)])


def test_xdist_report_equals_serial(suite):
    p = suite(CELLS)
    p.runpytest("--hac-samples=6", "--hac-report-dir=serial").assert_outcomes(passed=4)
    result = p.runpytest_subprocess("-n", "2", "--hac-samples=6", "--hac-report-dir=parallel")
    result.assert_outcomes(passed=4)
    serial, _ = _cells(p.path / f"serial/{MODEL}.json")
    parallel, data = _cells(p.path / f"parallel/{MODEL}.json")
    assert parallel == serial and data["complete"] is True and data["n"] == 6


def test_shards_side_by_side_merge_into_the_full_run(suite, capsys):
    p = suite(CELLS)
    p.runpytest("--hac-samples=4", "--hac-report-dir=full").assert_outcomes(passed=4)
    p.runpytest("--hac-samples=4", "--hac-shard=1/2").assert_outcomes(passed=2)
    p.runpytest("--hac-samples=4", "--hac-shard=2/2").assert_outcomes(passed=2)
    reports = p.path / "reports"
    shards = sorted(reports.glob("*.shard-*.json"))
    assert [s.name for s in shards] == [f"{MODEL}.shard-1-of-2.json", f"{MODEL}.shard-2-of-2.json"]
    assert not (reports / f"{MODEL}.json").exists()  # a shard never poses as the full report
    for i, shard in enumerate(shards, 1):
        cells, data = _cells(shard)
        assert data["scope"]["shard"] == [i, 2] and data["scope"]["selected"] == 2 and data["scope"]["total"] == 4
        assert len(cells) == 2 and data["complete"] is True
    assert "shard 1 of 2 (2 of 4 cells)" in (reports / f"{MODEL}.shard-1-of-2.md").read_text()

    assert _merge(*shards, "-o", p.path / "merged") == 0
    assert "4 cells, 4 passed, 0 failed, run complete" in capsys.readouterr().out
    full, full_data = _cells(p.path / f"full/{MODEL}.json")
    merged, data = _cells(p.path / f"merged/{MODEL}.json")
    assert merged == full and len(merged) == 4
    assert data["complete"] is True and data["ids"] == full_data["ids"]
    assert data["scope"]["shard"] is None and data["scope"]["selected"] == data["scope"]["total"] == 4
    assert data["scope"]["cells_hash"] == full_data["scope"]["cells_hash"]
    assert (p.path / f"merged/{MODEL}.png").read_bytes()[:4] == b"\x89PNG"


def test_merge_of_a_missing_or_repeated_shard_fails(suite, capsys):
    p = suite(CELLS)
    p.runpytest("--hac-samples=4", "--hac-shard=1/2").assert_outcomes(passed=2)
    shard1 = p.path / f"reports/{MODEL}.shard-1-of-2.json"

    assert _merge(shard1, "-o", p.path / "merged") == 2
    err = capsys.readouterr().err
    assert "2/2" in err and "missing" in err
    assert _merge(shard1, shard1, "-o", p.path / "merged") == 2
    err = capsys.readouterr().err
    assert "1/2" in err and "more than once" in err
    assert not (p.path / "merged").exists()


def test_merge_refuses_shards_of_runs_with_different_cells(suite, capsys):
    p = suite(CELLS)
    p.runpytest("--hac-samples=4", "--hac-shard=1/2").assert_outcomes(passed=2)
    p.makepyfile(test_cells=CELLS.replace("[30, 60, 90]", "[30, 60, 80]"))
    p.runpytest("--hac-samples=4", "--hac-shard=2/2").assert_outcomes(passed=2)
    shards = sorted((p.path / "reports").glob("*.shard-*.json"))
    assert len(shards) == 2
    assert _merge(*shards, "-o", p.path / "merged") == 2
    assert "different runs" in capsys.readouterr().err


def _report(ids, cells=(), **kw) -> Report:
    return Report(model="m", dataset="d", n=len(ids), device="cpu", seed=0, gate_rule="point", ids=list(ids),
                  cells=list(cells), complete=kw.pop("complete", True), **kw)


def _cell(case_id, ids, passed=True) -> Cell:
    r = Result.from_correct([True] * len(ids), case_id=case_id, codec="jpeg", quality=50, rounds=1, threat="clean",
                            attack=None, eps=None, bpp=1.0, psnr=30.0, seconds=0.1, ids=ids)
    return Cell(test=f"t.py::test[{case_id}]", result=r, passed=passed)


def test_merge_error_on_different_images_is_short(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write_report(_report([f"a/img{i:04d}.jpg" for i in range(1000)]), a)
    write_report(_report([f"b/img{i:04d}.jpg" for i in range(1000)]), b)
    assert _merge(a / "m.json", b / "m.json", "-o", tmp_path / "merged") == 2
    err = capsys.readouterr().err
    assert "different images" in err and "1000" in err
    assert len(err) < 600 and "img0500" not in err


def test_merge_refuses_shards_with_different_cell_lists(tmp_path, capsys):
    ids = ("x", "y")
    write_report(_report(ids, [_cell("c1", ids)], scope=Scope(1, 2, (1, 2), "aaaa")), tmp_path)
    write_report(_report(ids, [_cell("c2", ids)], scope=Scope(1, 2, (2, 2), "bbbb")), tmp_path)
    shards = sorted(tmp_path.glob("*.shard-*.json"))
    assert _merge(*shards, "-o", tmp_path / "merged") == 2
    assert "different runs" in capsys.readouterr().err


@pytest.mark.parametrize("failed, complete", [(True, True), (False, False)])
def test_merged_run_with_a_failure_or_missing_cells_exits_1(tmp_path, capsys, failed, complete):
    ids = ("x", "y")
    write_report(_report(ids, [_cell("c1", ids)], scope=Scope(1, 2, (1, 2), "h")), tmp_path)
    write_report(_report(ids, [_cell("c2", ids, passed=not failed)], scope=Scope(1, 2, (2, 2), "h"),
                         complete=complete), tmp_path)
    assert _merge(*sorted(tmp_path.glob("*.shard-*.json")), "-o", tmp_path / "merged") == 1
    out = capsys.readouterr().out
    assert ("1 failed" in out) == failed and ("INCOMPLETE" in out) == (not complete)


def test_merge_refuses_reports_of_different_models(tmp_path, capsys):
    for name in ("a", "b"):
        write_report(Report(model=name, dataset="embedded", n=1, device="cpu", seed=0, gate_rule="ci"), tmp_path)
    assert _merge(tmp_path / "a.json", tmp_path / "b.json", "-o", tmp_path / "m") == 2
    assert "different model" in capsys.readouterr().err


def test_selected_run_writes_a_selection_report_beside_the_full_one(suite):
    p = suite(CELLS)
    p.runpytest("--hac-samples=4").assert_outcomes(passed=4)
    full = p.path / f"reports/{MODEL}.json"
    before, mtime = full.read_bytes(), full.stat().st_mtime_ns
    full_md = (p.path / f"reports/{MODEL}.md").read_bytes()

    p.runpytest("--hac-samples=4", "-k", "q30").assert_outcomes(passed=1)
    selection = p.path / f"reports/{MODEL}.selection.json"
    cells, data = _cells(selection)
    assert [case for case, *_ in cells.values()] == ["jpeg-q30-r1-clean"]
    assert data["complete"] is True and data["scope"]["selected"] == 1 and data["scope"]["total"] == 4
    assert data["scope"]["shard"] is None
    assert "complete (selected 1 of 4 cells)" in (p.path / f"reports/{MODEL}.selection.md").read_text()
    assert full.read_bytes() == before and full.stat().st_mtime_ns == mtime
    assert (p.path / f"reports/{MODEL}.md").read_bytes() == full_md


THREADS = """
import os, pathlib
import pytest, torch

@pytest.mark.hac(codecs={"jpeg": [50, 90]}, threats=["clean"])
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    pathlib.Path(f"threads-{worker}-{hac_case.id}.txt").write_text(str(torch.get_num_threads()))
"""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _threads_run(p):
    result = p.runpytest_subprocess("-n", "2", "--hac-model=tiny-cnn", "--hac-samples=4")
    result.assert_outcomes(passed=2)
    seen = {f.name: int(f.read_text()) for f in p.path.glob("threads-*.txt")}
    assert len(seen) == 2 and not any(name.startswith("threads-main") for name in seen)
    _, data = _cells(p.path / "reports/tiny-cnn.json")
    return seen, data["meta"]["torch_threads"]


@pytest.fixture
def no_thread_env(monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HAC_THREADS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_xdist_workers_share_the_cores(suite, no_thread_env):
    expected = max(1, _cores() // 2)
    seen, _ = _threads_run(suite(THREADS))
    assert set(seen.values()) == {expected}


def test_xdist_report_records_the_workers_threads(suite, no_thread_env):
    expected = max(1, _cores() // 2)
    _, recorded = _threads_run(suite(THREADS))
    assert recorded == expected


@pytest.mark.skipif(_cores() < 2, reason="one core: the user's setting and the workers' share are both 1")
def test_xdist_respects_the_users_omp_num_threads(suite, no_thread_env):
    # all cores for each worker (torch caps OMP_NUM_THREADS at the core count), where auto would give cores // 2
    no_thread_env.setenv("OMP_NUM_THREADS", str(_cores()))
    seen, recorded = _threads_run(suite(THREADS))
    assert set(seen.values()) == {_cores()} and recorded == _cores()


@pytest.mark.parametrize("shard", ["0/2", "3/2", "x"])
def test_bad_shard_is_a_usage_error(suite, shard):
    result = suite(CELLS).runpytest(f"--hac-shard={shard}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hac-shard*"])
