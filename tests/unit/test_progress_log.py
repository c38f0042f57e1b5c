"""Progress lines in logs: at most one per interval, with cells done, the current cell, images/s and time left."""
from pytest_hac.plugin.progress_log import Eta, ProgressLog, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_eta_scales_time_spent_by_planned_work_left():
    clock = Clock()
    eta = Eta(3, {"a": 1.0, "b": 3.0, "c": 6.0}, clock=clock)
    assert eta.left() is None and eta.text() == "time left: estimating"
    clock.now += 10
    eta.finish("a")
    assert eta.left() == 10 * 9 / 1
    clock.now += 30
    eta.finish("b")
    assert eta.left() == 40 * 6 / 4 and eta.text() == "about 60 s left"
    counted = Eta(4, None, clock=clock)  # no weights (an xdist controller): every cell costs the same
    clock.now += 20
    counted.finish("x")
    assert counted.left() == 20 * 3
    assert duration(42) == "42 s" and duration(600) == "10 min" and duration(5400 * 2) == "3.0 h"


def test_one_line_per_interval_at_most_and_none_in_short_runs():
    clock, lines = Clock(), []
    log = ProgressLog(lines.append, 30, Eta(2, {"c1": 1.0, "c2": 1.0}, clock=clock), clock=clock)
    with log.cell_running("c1"):
        for done in (8, 16):
            clock.now += 5
            log.update("attack", done, 16)
    assert lines == []  # 10 s: shorter than the interval, nothing printed
    with log.cell_running("c2"):
        clock.now += 25
        log.update("attack", 8, 16)
        clock.now += 1
        log.update("attack", 16, 16)
    assert lines == ["pytest-hac: 1/2 cells done · now c2 (attack 8/16) · 1.2 img/s · about 35 s left"]
    clock.now += 30
    log.finished("c3-outside-the-plan")
    assert len(lines) == 2 and lines[1].startswith("pytest-hac: 3/3 cells done ·")


def test_zero_turns_lines_off():
    clock, lines = Clock(), []
    log = ProgressLog(lines.append, 0, Eta(1, clock=clock), clock=clock)
    clock.now += 1000
    log.started("c")
    log.finished("c")
    assert lines == []


def _report(nodeid: str, when: str, **props):
    import json
    from types import SimpleNamespace

    return SimpleNamespace(nodeid=nodeid, when=when,
                           user_properties=[(k, v if k == "hac_n" else json.dumps(v)) for k, v in props.items()])


def test_an_xdist_controller_writes_lines_between_cell_reports_naming_the_cells_running():
    from pytest_hac.plugin.progress_log import START_PROPERTY, WEIGHTS_PROPERTY, XdistProgress

    clock, lines = Clock(), []
    progress = XdistProgress(config=None, every=30, clock=clock)
    progress.log.write = lines.append
    clock.now += 31
    progress.pytest_runtest_logstart("t.py::test_other", None)  # before any cell: perhaps no cell at all
    progress.pytest_runtest_logreport(_report("t.py::test_other", "setup"))
    assert lines == []
    start = _report("t.py::t[c1]", "setup", hac_cell_start={"cell": "c1", "selected": 3}, keep="x")
    progress.pytest_runtest_logreport(start)
    assert [n for n, _ in start.user_properties] == ["keep"]  # ours are taken off the report
    assert lines == ["pytest-hac: 0/3 cells done · now c1 · time left: estimating"]
    progress.pytest_runtest_logstart("t.py::t[c2]", None)  # within the interval: no line
    clock.now += 31
    progress.pytest_runtest_logreport(_report("t.py::t[c2]", "setup", **{START_PROPERTY: {"cell": "c2",
                                                                                         "selected": 3}}))
    assert lines[1:] == ["pytest-hac: 0/3 cells done · now c1, c2 · time left: estimating"]
    call = _report("t.py::t[c1]", "call", hac_n=16, **{WEIGHTS_PROPERTY: {"c1": 1.0, "c2": 1.0, "c3": 2.0}})
    progress.pytest_runtest_logreport(call)
    progress.pytest_runtest_logreport(_report("t.py::t[c1]", "teardown"))
    assert len(lines) == 2 and progress.log.eta.weights == {"c1": 1.0, "c2": 1.0, "c3": 2.0}
    clock.now += 31  # c2 runs on: the next event anywhere (here another test's start) writes the line
    progress.pytest_runtest_logstart("t.py::test_other2", None)
    assert lines[2:] == ["pytest-hac: 1/3 cells done · now c2 · 0.2 img/s · about 5 min left"]  # 93 s x 3 / 1
