"""Trends over a history: a slow drift no step shows is flagged, a stable cell is not, a sudden drop is a step,
and runs of other data or attacks are not compared (the table says so)."""
import random
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_hac.__main__ import main as hac_main
from pytest_hac.report.history import record_history
from pytest_hac.report.trend import build_trend, trend_of
from pytest_hac.report.trend_view import DROP_GID, figure, trend_failures, trend_table

N, RUNS = 200, 10
DRIFT, STABLE, SUDDEN = "jpeg-q50-r1-oblivious-pgd", "jpeg-q75-r1-oblivious-pgd", "jpeg-q90-r1-oblivious-pgd"


def _step(correct: list[bool], rng: random.Random, *, lose: int, noise: int = 2) -> list[bool]:
    """``lose`` right images turn wrong (the drift); ``noise`` right turn wrong and ``noise`` wrong turn right."""
    out = list(correct)
    right = [i for i, c in enumerate(out) if c]
    wrong = [i for i, c in enumerate(out) if not c]
    for i in rng.sample(right, lose + noise):
        out[i] = False
    for i in rng.sample(wrong, noise):
        out[i] = True
    return out


def _runs(synthetic, sudden_at: int | None = None) -> list:
    """Ten runs of 200 images: DRIFT loses 1 point (2 images) a run, STABLE only trades 2 images each way a run,
    SUDDEN (when asked) loses 15 points at run ``sudden_at``."""
    rng = random.Random(0)
    cells = {DRIFT: [i < 160 for i in range(N)], STABLE: [i < 150 for i in range(N)],
             SUDDEN: [i < 170 for i in range(N)]}
    runs = []
    for k in range(RUNS):
        if k:
            cells = {DRIFT: _step(cells[DRIFT], rng, lose=2), STABLE: _step(cells[STABLE], rng, lose=0),
                     SUDDEN: _step(cells[SUDDEN], rng, lose=30 if k == sudden_at else 0)}
        runs.append(synthetic.report(cells if sudden_at else {k: v for k, v in cells.items() if k != SUDDEN}))
    return runs


def _record(runs, directory):
    for rep in runs:
        record_history(rep, directory)
    return directory


def test_a_one_point_a_run_drift_is_flagged_and_a_stable_cell_is_not(tmp_path, synthetic):
    trend = trend_of(_record(_runs(synthetic), tmp_path / "hist"))
    assert len(trend.entries) == RUNS and trend.excluded == {}
    drift_points = trend.cells[DRIFT]
    assert [round(100 * p.result.accuracy) for p in drift_points] == list(range(80, 70, -1))
    assert not any(p.dropped for p in drift_points)  # no single step is significant ...
    assert all(p.step.p_drop > 0.2 for p in drift_points[1:])
    [finding] = trend.findings  # ... but the window is, and the stable cell stays quiet
    assert (finding.case_id, finding.kind, finding.first, finding.last) == (DRIFT, "drift", 0, RUNS - 1)
    assert finding.points == pytest.approx(9.0) and finding.comparison.p_drop < 0.01
    assert [f.case_id for f in trend.drifts(5)] == [DRIFT] and trend.drifts(10) == []
    text = trend_table(trend)
    row = next(line for line in text.splitlines() if line.startswith(f"| `{DRIFT}`"))
    assert "**drift**" in row and "▼" not in row and "-9.0" in row
    stable = next(line for line in text.splitlines() if line.startswith(f"| `{STABLE}`"))
    assert "drift" not in stable and "▼" not in stable


def test_a_sudden_drop_is_marked_on_its_run_and_is_no_drift(synthetic):
    from pytest_hac.report.history import HistoryEntry

    runs = _runs(synthetic, sudden_at=6)
    trend = build_trend([HistoryEntry(Path(f"{i}.json"), rep, {}) for i, rep in enumerate(runs)])
    sudden = trend.cells[SUDDEN]
    assert [p.run for p in sudden if p.dropped] == [6]
    kinds = {f.case_id: f.kind for f in trend.findings}
    assert kinds == {DRIFT: "drift", SUDDEN: "drop"} and [f.case_id for f in trend.drifts()] == [DRIFT]
    row = next(line for line in trend_table(trend).splitlines() if line.startswith(f"| `{SUDDEN}`"))
    assert row.count("▼") == 1 and row.split("|")[-2].strip() == "drop"
    fig = figure(trend)
    assert len([c for ax in fig.axes for c in ax.collections if c.get_gid() == DROP_GID]) == 1


def test_a_sudden_drop_into_the_newest_run_fails_the_trend_the_night_it_happens(tmp_path, synthetic, capsys):
    history = _record(_runs(synthetic, sudden_at=RUNS - 1), tmp_path / "hist")
    trend = trend_of(history)
    [step] = trend.steps(3)
    assert (step.case_id, step.kind, step.first, step.last) == (SUDDEN, "step", RUNS - 2, RUNS - 1)
    assert step.points == pytest.approx(15.0) and step.comparison.p_drop < 0.001
    assert [f.case_id for f in trend.failures(3)] == [SUDDEN, DRIFT] and trend.steps(16) == []
    [line] = [x for x in trend_failures(trend, 3) if SUDDEN in x]
    assert line.startswith(f"step `{SUDDEN}`: 0.850 -> 0.700 (-15.0 points") and "p=" in line
    out = tmp_path / "out"
    assert hac_main(["trend", str(history), "-o", str(out), "--fail", "10"]) == 1  # the drift is 9: the step fails
    err = capsys.readouterr().err
    assert f"FAILED: step `{SUDDEN}`" in err and "-15.0 points" in err and "drift" not in err
    # an old step failed its own night; the window shows it as a drop, which fails nothing later
    old = trend_of(_record(_runs(synthetic, sudden_at=6), tmp_path / "old"))
    assert old.steps() == [] and [f.case_id for f in old.failures(10)] == []


def test_runs_of_other_data_or_another_attack_are_not_compared(synthetic):
    from pytest_hac.report.history import HistoryEntry

    runs = _runs(synthetic)
    runs[3] = replace(runs[3], dataset="imagenette")
    weaker = {**synthetic.PGD, "steps": 2}
    runs[5] = synthetic.report({c.case_id: list(c.result.correct) for c in runs[5].cells}, attack=weaker)
    trend = build_trend([HistoryEntry(Path(f"{i}.json"), rep, {}) for i, rep in enumerate(runs)])
    assert "other data 'imagenette'" in trend.excluded[3]
    assert trend.cells[DRIFT][3].why and "attack differs" in trend.cells[DRIFT][5].why
    assert trend.cells[DRIFT][4].step.compared == N  # run 5 (index 4) is compared with run 3 (index 2)
    text = trend_table(trend)
    assert "not compared: other data 'imagenette'" in text and "0.77 °" in text
    assert [f.case_id for f in trend.findings] == [DRIFT]


def test_the_report_section_counts_the_current_run_once(tmp_path, synthetic):
    runs = _runs(synthetic)
    history = _record(runs[:-1], tmp_path / "hist")
    before = trend_table(trend_of(history, runs[-1]), title="##")
    record_history(runs[-1], history)
    trend = trend_of(history, runs[-1])
    after = trend_table(trend, title="##")
    assert before.startswith("## Trend: tiny-cnn over the last 10 run(s)") and "**drift**" in before
    assert after == before and len(trend.entries) == RUNS
    assert len(trend_failures(trend, points=5)) == 1 and trend_failures(trend, 10) == []
    first = trend_table(trend_of(tmp_path / "empty", runs[0]), title="##")
    assert "Only one run" in first


def test_trend_cli_writes_table_and_plot_and_fails_on_a_drift(tmp_path, synthetic, capsys):
    history = _record(_runs(synthetic), tmp_path / "hist")
    out = tmp_path / "out"
    assert hac_main(["trend", str(history), "-o", str(out)]) == 0
    assert "**drift**" in capsys.readouterr().out
    assert (out / "tiny-cnn.trend.png").read_bytes()[:4] == b"\x89PNG"
    written = (out / "tiny-cnn.trend.md").read_text()
    assert "| `jpeg-q50-r1-oblivious-pgd` |" in written and "](tiny-cnn.trend.png)" in written
    assert hac_main(["trend", str(history), "-o", str(out), "--fail", "5"]) == 1
    assert "FAILED: drift" in capsys.readouterr().err
    assert hac_main(["trend", str(history), "-o", str(out), "--fail", "10"]) == 0
    assert hac_main(["trend", str(history), "-o", str(out), "--last", "3", "--fail", "1"]) == 0  # 2 points: noise
    assert hac_main(["trend", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_html_page_marks_steps_drifts_and_runs_not_compared(synthetic):
    import re

    from pytest_hac.report.history import HistoryEntry
    from pytest_hac.report.html import page

    runs = _runs(synthetic, sudden_at=6)
    runs[3] = replace(runs[3], dataset="imagenette")
    trend = build_trend([HistoryEntry(Path(f"{i}.json"), rep, {}) for i, rep in enumerate(runs)])
    text = page(runs[-1], trend=trend)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><th><a href='#cell-([^']+)'>.*?</tr>", text)}
    assert set(rows) == {DRIFT, STABLE, SUDDEN}  # each cell links to its row of the page
    assert "<b>drift</b>" in rows[DRIFT] and "class=drop" not in rows[DRIFT]
    assert rows[SUDDEN].count("<td class=drop>") == 1 and "<td>drop</td>" in rows[SUDDEN]
    assert all(row.count("<td class=apart>") == 1 for row in rows.values())  # run 4: other data
    assert "not compared: other data &#x27;imagenette&#x27;" in text and "drift jpeg-q50-r1-oblivious-pgd" in text
    assert re.search(r"<img id='trend-image' [^>]*src='data:image/png;base64,iVBOR", text)
    assert "id='trend'" not in page(runs[-1], trend=build_trend([HistoryEntry(Path("0.json"), runs[-1], {})]))
