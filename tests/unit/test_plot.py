"""The plot: every series visible, thresholds and failures marked, one legend, panels in threat order."""
from pathlib import Path

import pytest

from pytest_hac.attacks import AttackSpec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.judge.result import Result
from pytest_hac.core.judge.verdict import Reason, ReasonKind, Status, Verdict
from pytest_hac.report.plot import FAILED_GID, THRESHOLD_GID, figure, style, write_plot
from pytest_hac.report.schema import Cell, Report

IDS = tuple(f"img{i}" for i in range(6))
PGD = {"name": "pgd", "eps": 4 / 255, "norm": "Linf", "steps": 10}


def cell(codec="jpeg", quality=50, rounds=1, threat="clean", correct=(1, 1, 1, 1, 0, 0), bpp=1.0, *,
         threshold=None, passed=True, test="test_x"):
    attacked = threat != "clean"
    case_id = f"{codec}-q{quality}-r{rounds}-{threat}" + ("-pgd" if attacked else "")
    case = Case(codec, quality, rounds, threat, AttackSpec.from_dict(PGD) if attacked else None, threshold, case_id)
    r = Result.from_correct(list(correct), case, bpp=bpp, psnr=None if bpp is None else 30.0, seconds=0.1, ids=IDS)
    return Cell(test=f"test_cells.py::{test}[{r.case_id}]", result=r, verdict=verdict_of(passed))


def report(cells):
    return Report(model="tiny-cnn", dataset="digits", n=len(IDS), device="cpu", seed=0, gate_rule="point",
                  ids=list(IDS), cells=list(cells), complete=True)


def series_lines(fig):
    """label -> the data line of each series, per panel."""
    return [{line.get_gid().removeprefix("series:"): line for line in ax.get_lines()
             if (line.get_gid() or "").startswith("series:")} for ax in fig.axes]


def marks(fig, gid):
    return [(x, y) for ax in fig.axes for line in ax.get_lines() if line.get_gid() == gid
            for x, y in zip(line.get_xdata(), line.get_ydata())]


def test_series_with_identical_points_stay_distinguishable():
    # JPEG r1 and r2 with the very same numbers: the old plot drew one line exactly over the other.
    rep = report(cell(quality=q, rounds=k, bpp=b) for q, b in ((25, 0.8), (50, 1.2), (75, 1.9)) for k in (1, 2))
    fig = figure(rep)
    (lines,) = series_lines(fig)
    r1, r2 = lines["jpeg r1"], lines["jpeg r2"]
    assert (r1.get_marker(), r1.get_linestyle()) != (r2.get_marker(), r2.get_linestyle())
    assert r1.get_marker() != r2.get_marker() and r1.get_color() != r2.get_color()
    assert list(r1.get_ydata()) == list(r2.get_ydata())
    # dodged sideways: no point of one hides a point of the other, and each stays close to its bpp
    assert all(a < b for a, b in zip(r1.get_xdata(), r2.get_xdata()))
    for line in (r1, r2):
        assert [round(x, 1) for x in line.get_xdata()] == [0.8, 1.2, 1.9]
    assert r1.get_markerfacecolor() == "none"  # open markers: coinciding shapes show through each other


def test_series_without_shared_points_are_not_moved():
    rep = report([cell(codec="jpeg", bpp=1.0, correct=(1, 1, 0, 0, 0, 0)), cell(codec="tiny-mse", quality=2, bpp=0.3)])
    (lines,) = series_lines(figure(rep))
    assert list(lines["jpeg r1"].get_xdata()) == [1.0] and list(lines["tiny-mse r1"].get_xdata()) == [0.3]


def test_many_series_get_distinct_styles():
    combos = {(s["marker"], str(s["linestyle"])) for s in map(style, range(77))}
    assert len(combos) == 77
    for i in range(76):
        a, b = style(i), style(i + 1)
        assert a["marker"] != b["marker"] and a["linestyle"] != b["linestyle"] and a["color"] != b["color"]


def test_failed_cells_are_marked():
    rep = report([cell(quality=25, bpp=0.8, correct=(1, 0, 0, 0, 0, 0), threshold=0.5, passed=False),
                  cell(quality=75, bpp=1.9, correct=(1, 1, 1, 1, 1, 0), threshold=0.5, passed=True),
                  cell(quality=90, bpp=2.5, correct=(1, 1, 1, 1, 1, 1), passed=None)])
    failed = marks(figure(rep), FAILED_GID)
    assert len(failed) == 1
    x, y = failed[0]
    assert x == pytest.approx(0.8) and y == pytest.approx(1 / 6)


def test_a_case_fails_when_any_of_its_tests_failed():
    # two tests on one cell: one point, marked failed because one of them failed
    rep = report([cell(bpp=1.0, test="test_a", passed=True), cell(bpp=1.0, test="test_b", passed=False)])
    assert len(marks(figure(rep), FAILED_GID)) == 1


def test_thresholds_are_drawn_at_their_bpp():
    rep = report([cell(quality=25, bpp=0.8, threshold=0.5), cell(quality=75, bpp=1.9, threshold=0.7),
                  cell(quality=90, bpp=2.5)])  # not gated: no threshold mark
    ticks = sorted(marks(figure(rep), THRESHOLD_GID))
    assert [(round(x, 6), y) for x, y in ticks] == [(0.8, 0.5), (1.9, 0.7)]


def test_one_legend_for_the_figure_lists_every_series_and_the_marks():
    rep = report([cell(codec="jpeg", rounds=1, bpp=1.0, threshold=0.5, passed=False, correct=(1, 0, 0, 0, 0, 0)),
                  cell(codec="jpeg", rounds=2, bpp=1.1),
                  cell(codec="tiny-mse", quality=2, bpp=0.4),  # only in the clean panel
                  cell(codec="jpeg", rounds=1, threat="oblivious", bpp=1.0),
                  cell(codec="tiny-hific", quality=2, threat="oblivious", bpp=0.5)])  # only in the oblivious panel
    fig = figure(rep)
    assert len(fig.axes) >= 2
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["jpeg r1", "jpeg r2", "tiny-hific r1", "tiny-mse r1", "threshold (in its series' colour)",
                     "failed (threshold)"]
    # a series keeps its style in every panel, so one legend entry describes it everywhere
    clean, oblivious = series_lines(fig)[:2]
    assert clean["jpeg r1"].get_marker() == oblivious["jpeg r1"].get_marker()
    assert clean["jpeg r1"].get_color() == oblivious["jpeg r1"].get_color()


def test_legend_has_no_marks_that_are_not_drawn():
    fig = figure(report([cell(bpp=1.0)]))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["jpeg r1"]


def test_panels_follow_the_threat_order():
    threats = ["query", "adaptive", "clean", "whitebox", "oblivious"]  # recorded out of order
    rep = report(cell(threat=t, bpp=1.0, correct=(1, 1, 0, 0, 0, 0)) for t in threats)
    titles = [ax.get_title().split(" ·")[0] for ax in figure(rep).axes]
    assert titles == ["clean", "oblivious", "whitebox", "adaptive", "query", "worst case (robust accuracy)"]


def test_several_attacks_in_one_threat_are_separate_series():
    fgsm = cell(threat="oblivious", bpp=1.0)
    r = fgsm.result
    from dataclasses import replace

    fgsm = replace(fgsm, result=replace(r, case=replace(r.case, id=r.case_id.replace("pgd", "fgsm"),
                                                        attack=AttackSpec("fgsm", 4 / 255, steps=1))))
    fig = figure(report([cell(threat="oblivious", bpp=1.0), fgsm]))
    (lines,) = series_lines(fig)
    assert len(lines) == 2 and all(label.startswith("jpeg r1 · ") for label in lines)


def test_no_plot_when_nothing_has_a_bpp(tmp_path):
    rep = report([cell(bpp=None), cell(threat="oblivious", bpp=None)])
    assert figure(rep) is None
    assert write_plot(rep, tmp_path / "m.png") is False
    assert list(tmp_path.iterdir()) == []
    assert write_plot(report([]), tmp_path / "m.png") is False


def test_write_plot_writes_a_png_atomically(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rep = report([cell(bpp=0.05), cell(quality=90, bpp=4.0, threshold=0.5)])  # wide range: log axis
    fig = figure(rep)
    assert isinstance(fig.canvas, FigureCanvasAgg) and fig.axes[0].get_xscale() == "log"
    path = tmp_path / "out" / "m.png"
    assert write_plot(rep, path) is True
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["m.png"]  # no temporary file left behind


def test_write_report_links_the_plot(tmp_path):
    from pytest_hac.report.output import write_report

    paths = write_report(report([cell(bpp=1.0)]), tmp_path, plot=True)
    assert paths["png"] == tmp_path / "tiny-cnn.png" and paths["png"].is_file()
    assert "](tiny-cnn.png)" in Path(paths["md"]).read_text()


def verdict_of(passed: bool | None) -> Verdict:
    reasons = (Reason(ReasonKind.THRESHOLD, "below"),) if passed is False else ()
    return Verdict({True: Status.PASSED, False: Status.FAILED, None: Status.MEASURED}[passed], reasons)


def test_one_quality_is_one_x_in_every_panel_on_a_readable_axis_with_the_undefended_model():
    """Issue 28: one JPEG quality was a dot on a 1.116-1.130 axis, at another x in the attacked panel than in the
    clean one, and the bare model was not drawn at all."""
    from pytest_hac.report.plot import UNDEFENDED_GID

    rep = report([cell(bpp=1.123), cell(threat="oblivious", bpp=1.116, correct=(1, 0, 0, 0, 0, 0)),
                  cell(codec="identity", quality=None, bpp=None, correct=(1, 1, 1, 1, 1, 0)),
                  cell(codec="identity", quality=None, threat="oblivious", bpp=None, correct=(0,) * 6)])
    fig = figure(rep)
    clean, attacked, worst = (lines["jpeg r1"] for lines in series_lines(fig))
    assert list(clean.get_xdata()) == list(attacked.get_xdata()) == list(worst.get_xdata()) == [1.123]  # one x
    low, high = fig.axes[0].get_xlim()
    assert high - low > 0.25  # not a hundredth of a bit wide
    levels = {ax.get_title().split(" ")[0]: line.get_ydata()[0] for ax in fig.axes for line in ax.get_lines()
              if line.get_gid() == UNDEFENDED_GID}
    assert levels == {"clean": pytest.approx(5 / 6), "oblivious": 0, "worst": 0}
    assert "undefended model (no codec)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_the_trend_plot_counts_runs_in_whole_numbers(synthetic):
    from pathlib import Path as P

    from pytest_hac.report.history import HistoryEntry
    from pytest_hac.report.trend import build_trend
    from pytest_hac.report.trend_view import figure as trend_figure

    runs = [synthetic.report({"jpeg-q50-r1-clean": [i < k for i in range(20)]}) for k in (15, 14, 16)]
    fig = trend_figure(build_trend([HistoryEntry(P(f"{i}.json"), rep, {}) for i, rep in enumerate(runs)]))
    assert list(fig.axes[0].get_xticks()) == [1, 2, 3]
