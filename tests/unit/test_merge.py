"""`pytest-hac merge` on written reports: what it refuses, and the exit status of a merged run."""
import pytest

from pytest_hac.__main__ import main as hac_main
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.judge.result import Result
from pytest_hac.core.judge.verdict import Status, Verdict
from pytest_hac.report.output import write_report
from pytest_hac.report.schema import Cell, Report, Scope, load_report


def _merge(*args) -> int:
    return hac_main(["merge", *map(str, args)])


def _report(ids, cells=(), **kw) -> Report:
    return Report(model="m", dataset="d", n=len(ids), device="cpu", seed=0, gate_rule="point", ids=list(ids),
                  cells=list(cells), complete=kw.pop("complete", True), **kw)


def _cell(case_id, ids, passed=True) -> Cell:
    r = Result.from_correct([True] * len(ids), Case("jpeg", 50, 1, "clean", None, id=case_id), bpp=1.0, psnr=30.0,
                            seconds=0.1, ids=ids)
    return Cell(test=f"t.py::test[{case_id}]", result=r, verdict=verdict_of(passed))


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


def verdict_of(passed: bool | None) -> Verdict:
    return Verdict({True: Status.PASSED, False: Status.FAILED, None: Status.MEASURED}[passed])


def test_merge_records_the_merged_run_once_in_the_history(tmp_path, capsys):
    ids, history = ("x", "y"), tmp_path / "history"
    for complete, folder in ((False, "interrupted"), (True, "done")):  # an interrupted shard: no entry
        for i, case in ((1, "c1"), (2, "c2")):
            write_report(_report(ids, [_cell(case, ids)], scope=Scope(1, 2, (i, 2), "h"), complete=complete or i == 1),
                         tmp_path / folder)
        shards = sorted((tmp_path / folder).glob("*.shard-*.json"))
        assert _merge(*shards, "-o", tmp_path / folder / "merged", "--history", history) == (0 if complete else 1)
        assert history.exists() == complete
    [entry] = history.glob("*.json")
    assert [r["case_id"] for r in load_report(entry).to_dict()["results"]] == ["c1", "c2"]
    # the merged run's report carries the trend (write_report's, as for a run's own with --hac-history)
    assert "## Trend: m over the last 1 run(s)" in (tmp_path / "done" / "merged" / "m.md").read_text()


def _shards(tmp_path, first: dict, second: dict, *, thresholds=("t", "t")) -> list:
    """Shards 1/2 and 2/2 of one cell list whose recorded settings are ``first`` and ``second``."""
    ids = ("x", "y")
    for i, (settings, th) in enumerate(zip((first, second), thresholds), start=1):
        write_report(_report(ids, [_cell(f"c{i}", ids)], scope=Scope(1, 2, (i, 2), "h", th),
                             meta={"settings": settings}), tmp_path)
    return sorted(tmp_path.glob("*.shard-*.json"))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name, first, second", [("soundness", "warn", "fail"), ("eps", "0.00392", "0.0157"),
                                                 ("steps", "10", "None"), ("samples", "100", "200")])
def test_merge_refuses_shards_run_with_another_setting_naming_it_in_either_order(tmp_path, capsys, reverse, name,
                                                                                  first, second):
    from pytest_hac.settings import DECIDING

    base = {k: "same" for k in DECIDING}
    shards = _shards(tmp_path, {**base, name: first}, {**base, name: second})
    assert _merge(*(shards[::-1] if reverse else shards), "-o", tmp_path / "merged") == 2
    flag = "--hac-" + name.replace("_", "-")
    assert f"{flag} differs ({first} (shard 1/2), {second} (shard 2/2))" in capsys.readouterr().err


def test_merge_refuses_shards_held_to_other_thresholds_or_of_another_version(tmp_path, capsys):
    same = {"seed": "0"}
    shards = _shards(tmp_path / "t", same, same, thresholds=("t1", "t2"))
    assert _merge(*shards, "-o", tmp_path / "merged") == 2
    assert "the thresholds applied (another thresholds file or marker threshold) differs" in capsys.readouterr().err
    shards = _shards(tmp_path / "v", same, None)
    assert _merge(*shards[::-1], "-o", tmp_path / "merged") == 2
    assert "the pytest-hac version (some reports record no settings) differs (recorded (shard 1/2), none " \
           "(shard 2/2))" in capsys.readouterr().err


def test_every_deciding_setting_is_a_setting():
    from dataclasses import fields

    from pytest_hac.settings import DECIDING, Settings

    assert set(DECIDING) <= {f.name for f in fields(Settings)}
