"""xdist workers produce the same report as one serial run and share the cores between them.

Plumbing, not models: everything runs on tiny-cnn, and each xdist run (three processes starting) is shared by
the tests that read it."""
import json
import os
import subprocess
import sys

import pytest

TINY = "--hac-model=tiny-cnn"


SHARED = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90]}, rounds=[1, 2], threats=["clean", "oblivious"], attack="pgd",
                 eps="8/255", steps=2)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def _serial_and_loadgroup(p, report_cells, passed: int):
    """The project ``p`` run serially and with ``-n 2 --dist loadgroup`` (tiny-cnn, 32 digits): both reports'
    cells and JSON, and the parallel run's result."""
    args = [TINY, "--hac-samples=32", "--hac-soundness=warn"]
    p.runpytest(*args, "--hac-report-dir=serial").assert_outcomes(passed=passed)
    result = p.runpytest_subprocess("-n", "2", "--dist", "loadgroup", *args, "--hac-report-dir=parallel")
    result.assert_outcomes(passed=passed)
    serial, serial_data = report_cells(p.path / "serial/tiny-cnn.json")
    parallel, data = report_cells(p.path / "parallel/tiny-cnn.json")
    return serial, serial_data, parallel, data, result


def test_loadgroup_keeps_each_shared_attack_on_one_worker(suite, report_cells):
    """With --dist loadgroup the six oblivious cells sharing one attack run on one worker: attacked once."""
    serial, serial_data, parallel, data, _ = _serial_and_loadgroup(suite(SHARED), report_cells, passed=12)
    assert parallel == serial  # test ids without xdist's @group suffix, the same numbers
    assert data["meta"]["attack_images"] == serial_data["meta"]["attack_images"] == 32  # one attack, once


THREADS = """
import os, pathlib
import pytest, torch

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90], "identity": []}, threats=["clean"], min_accuracy=0.3)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    pathlib.Path(f"threads-{worker}-{hac_case.id}.txt").write_text(str(torch.get_num_threads()))
"""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _threads_run(directory, **env) -> tuple[dict[str, int], int]:
    """THREADS run with -n 2 on 6 digits in a fresh project folder under ``env`` (no thread settings but these):
    the threads each worker's cells saw, by file name, and the threads the report records."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_cells.py").write_text(THREADS)
    (directory / "pytest.ini").write_text("[pytest]\n")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") and not k.startswith(("HAC_", "PYTEST_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", TINY,
                           "--hac-samples=6"], cwd=directory, env={**clean, **env}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "4 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    seen = {f.name: int(f.read_text()) for f in directory.glob("threads-*.txt")}
    assert len(seen) == 4 and not any(name.startswith("threads-main") for name in seen)
    data = json.loads((directory / "reports/tiny-cnn.json").read_text())
    return seen, data["meta"]["torch_threads"]


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    """One -n 2 run without OMP_NUM_THREADS, MKL_NUM_THREADS or HAC_THREADS (the three tests below read it): its
    folder, the threads its workers saw and the threads its report records."""
    directory = tmp_path_factory.mktemp("parallel")
    return directory, *_threads_run(directory)


def test_xdist_report_equals_serial(suite, parallel, report_cells):
    p = suite(THREADS)
    p.runpytest(TINY, "--hac-samples=6").assert_outcomes(passed=4)
    serial, _ = report_cells(p.path / "reports/tiny-cnn.json")
    parallel_cells, data = report_cells(parallel[0] / "reports/tiny-cnn.json")
    assert parallel_cells == serial and data["complete"] is True and data["n"] == 6


def test_xdist_workers_share_the_cores(parallel):
    expected = max(1, _cores() // 2)
    _, seen, _ = parallel
    assert set(seen.values()) == {expected}


def test_xdist_report_records_the_workers_threads(parallel):
    expected = max(1, _cores() // 2)
    _, _, recorded = parallel
    assert recorded == expected


@pytest.mark.skipif(_cores() < 2, reason="one core: the user's setting and the workers' share are both 1")
def test_xdist_respects_the_users_omp_num_threads(tmp_path):
    # all cores for each worker (torch caps OMP_NUM_THREADS at the core count), where auto would give cores // 2
    seen, recorded = _threads_run(tmp_path / "project", OMP_NUM_THREADS=str(_cores()))
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
    serial, serial_data, parallel, data, result = _serial_and_loadgroup(p, report_cells, passed=8)
    assert parallel == serial
    assert data["meta"]["attack_images"] == serial_data["meta"]["attack_images"] == 32 * 3  # bare + 2 white-box
    assert data["meta"]["thresholds"] == serial_data["meta"]["thresholds"] != []
    result.stdout.fnmatch_lines(["thresholds: *tables [[]tiny-cnn[]] applied to 8 cells"])
