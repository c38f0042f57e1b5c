"""xdist workers produce the same report as one serial run and share the cores between them.

Plumbing, not models: everything runs on tiny-cnn. Starting processes is what costs here, so one project
(``XDIST_PROJECT`` in conftest.py: shared, worst-case and thread-recording cells) runs once serially and once
with ``-n 2 --dist loadgroup``, and the tests read what they check from those two runs (``xdist_run``); only
the user's own thread setting needs a run of its own."""
import json
import os

import pytest


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cells(xdist_run, report_cells, module: str):
    """One test module's cells in the serial and the parallel report, and both reports."""
    serial, serial_data = report_cells(xdist_run.serial / "reports/tiny-cnn.json")
    parallel, data = report_cells(xdist_run.parallel / "reports/tiny-cnn.json")

    def pick(cells: dict) -> dict:
        return {test: cell for test, cell in cells.items() if test.startswith(f"{module}::")}

    assert pick(serial)
    return pick(serial), serial_data, pick(parallel), data


def test_xdist_report_equals_serial(xdist_run, report_cells):
    serial, serial_data, parallel, data = _cells(xdist_run, report_cells, "test_threads.py")
    assert parallel == serial and data["complete"] is True and data["n"] == serial_data["n"] == 32
    assert len(data["results"]) == len(serial_data["results"]) == xdist_run.cells


def test_junit_names_are_the_same_with_and_without_xdist(xdist_run):
    """CI test history keys on JUnit names: turning on -n must not make new tests of the old ones."""
    import xml.etree.ElementTree as ET

    def names(folder) -> list[str]:
        cases = ET.parse(folder / "junit.xml").getroot().iter("testcase")
        return sorted(f"{c.get('classname')}::{c.get('name')}" for c in cases)

    serial, parallel = names(xdist_run.serial), names(xdist_run.parallel)
    assert len(serial) == xdist_run.cells and parallel == serial
    assert not any("@" in name for name in parallel)


def test_loadgroup_keeps_each_shared_attack_on_one_worker(xdist_run, report_cells):
    """The oblivious cells sharing one attack run on one worker: attacked once."""
    serial, serial_data, parallel, data = _cells(xdist_run, report_cells, "test_shared.py")
    assert parallel == serial  # test ids without xdist's @group suffix, the same numbers
    # the bare model's attack once (every module's oblivious cells share it) and the two white-box attacks
    assert data["meta"]["attack_images"] == serial_data["meta"]["attack_images"] == 32 * 3


def test_xdist_attacks_each_attack_once_worst_cells_included(xdist_run, report_cells):
    """Worst cells and white-box cells (whose verdicts need the oblivious twin) are grouped with the attacks
    they read: -n 2 attacks exactly what the serial run attacks, and reports the same, thresholds line too."""
    serial, serial_data, parallel, data = _cells(xdist_run, report_cells, "test_worst.py")
    assert parallel == serial
    assert data["meta"]["attack_images"] == serial_data["meta"]["attack_images"] == 32 * 3  # bare + 2 white-box
    lines = [[line.replace(str(folder), "<project>") for line in meta["meta"]["thresholds"]]
             for folder, meta in ((xdist_run.parallel, data), (xdist_run.serial, serial_data))]
    assert lines[0] == lines[1] != []
    assert f"applied to {xdist_run.cells} cells" in xdist_run.output


def _threads_seen(directory) -> dict[str, int]:
    """The threads each worker's cells saw, by file name (the cells of test_threads.py write them)."""
    seen = {f.name: int(f.read_text()) for f in directory.glob("threads-*.txt")}
    assert len(seen) == 4 and not any(name.startswith("threads-main") for name in seen)
    return seen


def test_xdist_workers_share_the_cores(xdist_run):
    assert set(_threads_seen(xdist_run.parallel).values()) == {max(1, _cores() // 2)}


def test_xdist_report_records_the_workers_threads(xdist_run):
    data = json.loads((xdist_run.parallel / "reports/tiny-cnn.json").read_text())
    assert data["meta"]["torch_threads"] == max(1, _cores() // 2)


@pytest.mark.skipif(_cores() < 2, reason="one core: the user's setting and the worker's share are both 1")
def test_xdist_respects_the_users_omp_num_threads(threads_project, monkeypatch):
    # one worker on one thread, as the user says, where auto would give it every core
    for name in ("MKL_NUM_THREADS", "HAC_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the worker starts with this environment
    threads_project.runpytest("-n", "1", "--hac-model=tiny-cnn", "--hac-samples=6").assert_outcomes(passed=4)
    assert set(_threads_seen(threads_project.path).values()) == {1}
    assert json.loads((threads_project.path / "reports/tiny-cnn.json").read_text())["meta"]["torch_threads"] == 1
