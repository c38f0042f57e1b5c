"""Faults: a run interrupted or killed, a killed xdist worker, a full disk, a report folder that cannot be
written, two sessions writing one folder. The report stays valid and says what happened; the results are
still printed. The rows of docs/reliability.md's Faults table (but CUDA out of memory) come from these tests.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import hypothesis.internal.observability  # noqa: F401  (imported once: see tests/conftest.py)
import pytest

TINY = "--hac-model=tiny-cnn"
CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60]}, threats=["clean"])
def test_cell(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
# --- interrupted and killed runs, killed workers --------------------------------------------------------


def test_interrupted_run_leaves_a_valid_incomplete_report_and_the_last_complete_one(suite, live_report_cells):
    p = suite(live_report_cells + "\ndef test_c_interrupt():\n    raise KeyboardInterrupt\n")
    p.runpytest(TINY, "--hac-samples=4", "-k", "not interrupt").assert_outcomes(passed=3)
    complete = (p.path / "reports/tiny-cnn.md").read_text()
    assert "run complete" in complete
    result = p.runpytest(TINY, "--hac-samples=4", no_reraise_ctrlc=True)  # pytester re-raises it by default
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert data["complete"] is False and len(data["results"]) == 2
    assert "INCOMPLETE" in (p.path / "reports/tiny-cnn.md").read_text()
    assert (p.path / "reports/tiny-cnn.previous.md").read_text() == complete  # the last complete report stays
    assert not list((p.path / "reports").glob(".*tmp"))  # no half-written temporaries left behind
    result.stdout.fnmatch_lines(["*pytest-hac: INCOMPLETE run (interrupted, stopped early or crashed): 2 of 2 "
                                 "cells finished*", "*2 cells: 2 passed, 0 failed*run INCOMPLETE*"])


def _report(path: Path) -> dict:
    return json.loads((path / "reports/tiny-cnn.json").read_text())


def test_killed_run_keeps_every_finished_cell(suite):
    p = suite("""
import os, signal
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60]}, threats=["clean"])
def test_a(hac_case, hac_evaluate):
    hac_evaluate(hac_case)

def test_b_killed():
    os.kill(os.getpid(), signal.SIGKILL)  # no pytest hook runs after this
""")
    result = p.runpytest_subprocess(TINY, "--hac-samples=4", "-p", "no:cacheprovider")
    assert result.ret == -signal.SIGKILL
    data = _report(p.path)
    assert [f for f in os.listdir(p.path / "reports") if f.endswith(".tmp")] == []  # no temporary left behind
    assert data["complete"] is False and sorted(r["case_id"] for r in data["results"]) == [
        "jpeg-q30-r1-clean", "jpeg-q60-r1-clean"]
    assert "INCOMPLETE" in (p.path / "reports/tiny-cnn.md").read_text()


def test_killed_xdist_worker_leaves_an_incomplete_report_and_fails(suite, tmp_path):
    from PIL import Image

    data_dir = tmp_path / "data"
    for cls, names in {"0": ["a.png", "b.png"], "1": ["c.png"]}.items():
        (data_dir / cls).mkdir(parents=True)
        for i, name in enumerate(names):
            Image.new("RGB", (40, 40), (60 * i, 90, 200)).save(data_dir / cls / name)
    (data_dir / "1/garbage.jpg").write_bytes(b"\x00not an image" * 20)
    (data_dir / "1/truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (data_dir / "1/empty.png").write_bytes(b"")
    p = suite("""
import os, signal
import pytest

@pytest.mark.hac(codecs={"jpeg": [20, 40, 60, 80]}, threats=["clean"])
def test_cell(hac_case, hac_evaluate):
    if hac_case.quality == 80:
        os.kill(os.getpid(), signal.SIGKILL)
    hac_evaluate(hac_case)
""")
    result = p.runpytest(TINY, f"--hac-data={data_dir}", "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*jpeg-q80-r1-clean*",
                                 "*xdist worker gw* crashed*the run is incomplete*"])
    data = _report(p.path)
    assert [f for f in os.listdir(p.path / "reports") if f.endswith(".tmp")] == []  # no temporary left behind
    assert data["complete"] is False
    assert sorted(r["case_id"] for r in data["results"]) == ["jpeg-q20-r1-clean", "jpeg-q40-r1-clean",
                                                            "jpeg-q60-r1-clean"]
    assert any("crashed" in note for note in data["notes"])
    assert sorted(data["skipped_images"]) == ["1/empty.png", "1/garbage.jpg", "1/truncated.jpg"]
    assert data["dataset"] == "data" and data["n"] == 3
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "INCOMPLETE" in md and "**skipped unreadable images** 3" in md


# --- faults: disk full, read-only folder, two sessions in one folder -----------------------------------


def test_disk_full_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from pytest_hac.io import files

    target = tmp_path / "r.json"
    target.write_text('{"old": true}')
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write(target, '{"new": true, "padding": "' + "x" * 1000 + '"}')
    assert target.read_text() == '{"old": true}'
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_disk_full_during_a_run_is_reported_results_still_printed_and_the_run_fails(suite, monkeypatch):
    from pytest_hac.report import baselines, output

    real, calls = output.atomic_write, []

    def full_after_the_start(path, text):
        calls.append(path)
        if len(calls) <= 3:  # the start's INCOMPLETE marker (JSON, Markdown, HTML) fits
            return real(path, text)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(output, "atomic_write", full_after_the_start)
    monkeypatch.setattr(baselines, "atomic_write", full_after_the_start)
    result = suite(CELLS).runpytest(TINY, "--hac-samples=4", "--hac-save-baseline", "-W", "ignore::UserWarning")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a nightly without its report is no green nightly
    result.stdout.fnmatch_lines(["*jpeg*30*1.00*", "*jpeg*60*",
                                 "*could not save baseline in .hac/baselines: [[]Errno 28[]] No space left on device*"])
    calls.clear()
    result2 = suite(CELLS).runpytest(TINY, "--hac-samples=4", "-W", "ignore::UserWarning")
    result2.stdout.fnmatch_lines(["*jpeg*30*", "*could not write reports to reports: [[]Errno 28[]] No space left*"])
    assert result2.ret == pytest.ExitCode.TESTS_FAILED


def test_read_only_report_dir_is_a_usage_error_naming_it(suite):
    p = suite(CELLS)
    if os.geteuid() == 0:  # root writes through chmod: use a folder that cannot exist (under a regular file)
        (p.path / "plain-file").write_text("")
        target = "plain-file/reports"
    else:
        (p.path / "ro").mkdir(mode=0o500)
        target = "ro"
    result = p.runpytest(TINY, "--hac-samples=4", f"--hac-report-dir={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # said at the start, before any cell ran
    assert "passed" not in result.stdout.str()
    result.stderr.fnmatch_lines([f"*pytest-hac: cannot write reports to folder {target} (*): make it writable or "
                                 f"pass --hac-report-dir=DIR*"])


def test_unwritable_report_dir_is_a_usage_error_naming_it(suite, live_report_cells):
    p = suite(live_report_cells.split("def test_b")[0])
    (p.path / "blocked").write_text("a file, not a folder")
    result = p.runpytest(TINY, "--hac-samples=4", "--hac-report-dir=blocked")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "passed" not in result.stdout.str()
    result.stderr.fnmatch_lines(["*pytest-hac: cannot write reports to folder blocked (Not a directory)*"])


def test_two_sessions_writing_one_report_dir_never_leave_a_broken_file(pytester):
    qualities = list(range(10, 100, 15))
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_cells=CELLS.replace("[30, 60]", str(qualities)))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TINY, "--hac-samples=4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAC_", "PYTEST_"))}
    procs = [subprocess.Popen(cmd, cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    report = pytester.path / "reports/tiny-cnn.json"
    reads = 0
    while any(proc.poll() is None for proc in procs):  # read while both write: every read parses
        if report.exists():
            json.loads(report.read_text())
            reads += 1
        time.sleep(0.02)
    outputs = [proc.communicate()[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert reads > 0
    data = json.loads(report.read_text())
    assert data["complete"] is True and len(data["results"]) == len(qualities)
    md = (pytester.path / "reports/tiny-cnn.md").read_text()
    assert md.startswith("# pytest-hac robustness report: tiny-cnn") and md.count("## Matrix") == 1
    assert [f for f in os.listdir(pytester.path / "reports") if f.endswith(".tmp")] == []


def test_report_files_are_readable_by_the_rest_of_the_job(tmp_path):
    """mkstemp creates 0600 files; a report must be as readable as any file the job writes (umask applies)."""
    from pytest_hac.io.files import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "r.md", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o644
