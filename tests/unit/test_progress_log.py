"""Progress lines in logs: at most one per interval, with cells done, the current cell, images/s and time left."""
import pytest

from pytest_hac.formats import duration
from pytest_hac.plugin.progress_log import Eta, Pace, ProgressLog


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


def _smoke_like_run() -> tuple[dict, list[tuple[str, float, float]]]:
    """A plan and the batches that carry it out, as the smoke suite on EfficientNet-Lite0 runs on a CPU: a clean
    cell first (predictions and JPEG round trips, the first batch paying seconds of warm-up), then attacks in
    batches of 16 images x 10 steps (a forward-and-backward pass costing 3 forward passes), codec round trips and
    predictions between them, and the probes' larger attacks (more steps) at the end of the attacked cells."""
    batches = [("predict", 20, 5.0 + 20 * 0.03), ("codec", 20, 20 * 0.004)]  # 5 s of warm-up in the first batch
    for cell in range(12):
        path = "bare" if cell % 2 == 0 else "approximate"  # white-box passes also run the codec's stand-in
        for _ in range(2):
            batches.append((f"attack:{path}", 160, 160 * (0.09 if path == "bare" else 0.14)))
        batches += [("codec", 20, 20 * 0.004), ("predict", 20, 20 * 0.03)]
        if cell % 4 == 0:  # a probe: 64 images x 20 steps
            batches += [("attack:bare", 320, 320 * 0.09)] * 4
    planned: dict[str, float] = {}
    for kind, passes, _ in batches:
        planned[kind] = planned.get(kind, 0) + passes
    return planned, batches


@pytest.mark.parametrize("overhead", [0.0, 0.15])
def test_the_time_left_comes_from_the_plan_and_the_measured_rates(overhead):
    """Within 2x of the real remaining time at a quarter, half and three quarters of the run (with ``overhead``:
    the share of wall time spent outside the passes, writing reports and deciding verdicts)."""
    planned, batches = _smoke_like_run()
    clock = Clock()
    passes: dict[str, float] = {}
    seconds: dict[str, float] = {}
    pace = Pace({"all": planned}, passes, seconds, clock=clock)
    assert pace.left() is None  # nothing measured yet
    total = sum(s for _, _, s in batches) * (1 + overhead)
    start, checked = clock.now, []
    for kind, n, secs in batches:
        clock.now += secs * (1 + overhead)
        passes[kind] = passes.get(kind, 0) + n
        seconds[kind] = seconds.get(kind, 0) + secs
        elapsed = clock.now - start
        for share in (0.25, 0.5, 0.75):
            if share not in [c[0] for c in checked] and elapsed >= share * total:
                checked.append((share, pace.left(), total - elapsed))
    assert [c[0] for c in checked] == [0.25, 0.5, 0.75]
    for share, estimate, real in checked:
        assert real / 2 <= estimate <= 2 * real, (share, estimate, real)
    # the cells-done ratio this replaced: after the first (clean) cell, which paid the warm-up, it said hours
    old = Eta(13, {"clean": 40.0, **{f"attacked{i}": 960.0 + (3840 if i % 4 == 0 else 0) for i in range(12)}},
              clock=clock)
    clock.now += 5.7
    old.finish("clean")
    assert old.left() > 3 * (total - 5.7)


def test_a_kind_not_measured_yet_borrows_a_measured_rate():
    clock = Clock()
    pace = Pace({"c": {"predict": 100, "attack:bare": 1000, "attack:approximate": 100}}, {"predict": 50.0},
                {"predict": 1.0}, clock=clock)
    pace._before = ({}, 0.0)  # as if the 50 predictions ran in this session
    clock.now += 1.0
    assert pace.rate("attack:bare") == pytest.approx(3 * 0.02)  # a backward pass costs about 3 forward ones
    assert pace.left() == pytest.approx(50 * 0.02 + 1100 * 0.06)
    pace.passes["attack:bare"], pace.seconds["attack:bare"] = 100.0, 5.0
    assert pace.rate("attack:approximate") == pytest.approx(0.05)  # a gradient path borrows another's first


def test_a_cell_whose_outcomes_came_from_the_cache_counts_as_done():
    clock = Clock()
    passes, seconds = {"predict": 10.0, "attack:bare": 100.0}, {"predict": 0.2, "attack:bare": 6.0}
    pace = Pace({"cached": {"attack:bare": 1000, "predict": 10}, "fresh": {"attack:bare": 100, "predict": 10}},
                passes, seconds, clock=clock)
    pace._before = ({}, 0.0)
    clock.now += 6.2
    assert pace.left() == pytest.approx(1000 * 0.06 + 10 * 0.02)  # the cached cell's attack seems still to do
    pace.finish("cached")  # finished without running it: its passes are done
    assert pace.left() == pytest.approx(100 * 0.06 + 10 * 0.02)


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
