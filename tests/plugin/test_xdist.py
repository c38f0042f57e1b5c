"""xdist workers produce the same report as one serial run and share the cores between them."""
import json
import os

import pytest

MODEL = "efficientnet-lite0"


def test_xdist_report_equals_serial(suite, four_clean_cells, report_cells):
    p = suite(four_clean_cells)
    p.runpytest("--hac-samples=6", "--hac-report-dir=serial").assert_outcomes(passed=4)
    result = p.runpytest_subprocess("-n", "2", "--hac-samples=6", "--hac-report-dir=parallel")
    result.assert_outcomes(passed=4)
    serial, _ = report_cells(p.path / f"serial/{MODEL}.json")
    parallel, data = report_cells(p.path / f"parallel/{MODEL}.json")
    assert parallel == serial and data["complete"] is True and data["n"] == 6


SHARED = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90]}, rounds=[1, 2], threats=["clean", "oblivious"], attack="pgd",
                 eps="8/255", steps=2)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def test_loadgroup_keeps_each_shared_attack_on_one_worker(suite, report_cells):
    """With --dist loadgroup the six oblivious cells sharing one attack run on one worker: attacked once."""
    p = suite(SHARED)
    args = ["--hac-model=tiny-cnn", "--hac-samples=32", "--hac-soundness=warn"]
    p.runpytest(*args, "--hac-report-dir=serial").assert_outcomes(passed=12)
    result = p.runpytest_subprocess("-n", "2", "--dist", "loadgroup", *args, "--hac-report-dir=parallel")
    result.assert_outcomes(passed=12)
    serial, serial_data = report_cells(p.path / "serial/tiny-cnn.json")
    parallel, data = report_cells(p.path / "parallel/tiny-cnn.json")
    assert parallel == serial  # test ids without xdist's @group suffix, the same numbers
    assert data["meta"]["attack_images"] == serial_data["meta"]["attack_images"] == 32  # one attack, once


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
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
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


WORST = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 90]}, threats=["clean", "oblivious", "whitebox", "worst"], attack="pgd",
                 eps="8/255", steps=2)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def test_xdist_attacks_each_attack_once_worst_cells_included(suite, report_cells):
    """Worst cells and white-box cells (whose verdicts need the oblivious twin) are grouped with the attacks
    they read: -n 2 attacks exactly what the serial run attacks, and reports the same, thresholds line too."""
    p = suite(WORST)
    (p.path / "hac_thresholds.toml").write_text('[tiny-cnn]\n"*-clean" = 0.5\n')
    args = ["--hac-model=tiny-cnn", "--hac-samples=32", "--hac-soundness=warn"]
    p.runpytest(*args, "--hac-report-dir=serial").assert_outcomes(passed=8)
    result = p.runpytest_subprocess("-n", "2", "--dist", "loadgroup", *args, "--hac-report-dir=parallel")
    result.assert_outcomes(passed=8)
    serial, serial_data = report_cells(p.path / "serial/tiny-cnn.json")
    parallel, data = report_cells(p.path / "parallel/tiny-cnn.json")
    assert parallel == serial
    assert data["meta"]["attack_images"] == serial_data["meta"]["attack_images"] == 32 * 3  # bare + 2 white-box
    assert data["meta"]["thresholds"] == serial_data["meta"]["thresholds"] != []
    result.stdout.fnmatch_lines(["thresholds: *tables [[]tiny-cnn[]] applied to 8 cells"])
