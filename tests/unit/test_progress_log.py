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
