"""CI shards (--hac-shard) write side-by-side reports that merge into the full run; merge refuses what does not fit."""
import pytest

from pytest_hac.__main__ import main as hac_main

MODEL = "tiny-cnn"
TINY = "--hac-model=tiny-cnn"


def _merge(*args) -> int:
    return hac_main(["merge", *map(str, args)])


def test_shards_side_by_side_merge_into_the_full_run(suite, capsys, four_clean_cells, report_cells):
    p = suite(four_clean_cells)
    p.runpytest(TINY, "--hac-samples=4", "--hac-report-dir=full").assert_outcomes(passed=4)
    p.runpytest(TINY, "--hac-samples=4", "--hac-shard=1/2").assert_outcomes(passed=2)
    p.runpytest(TINY, "--hac-samples=4", "--hac-shard=2/2").assert_outcomes(passed=2)
    reports = p.path / "reports"
    shards = sorted(reports.glob("*.shard-*.json"))
    assert [s.name for s in shards] == [f"{MODEL}.shard-1-of-2.json", f"{MODEL}.shard-2-of-2.json"]
    assert not (reports / f"{MODEL}.json").exists()  # a shard never poses as the full report
    for i, shard in enumerate(shards, 1):
        cells, data = report_cells(shard)
        assert data["scope"]["shard"] == [i, 2] and data["scope"]["selected"] == 2 and data["scope"]["total"] == 4
        assert len(cells) == 2 and data["complete"] is True
    assert "shard 1 of 2 (2 of 4 cells)" in (reports / f"{MODEL}.shard-1-of-2.md").read_text()

    assert _merge(*shards, "-o", p.path / "merged") == 0
    assert "4 cells, 4 passed, 0 failed, 0 measured, run complete" in capsys.readouterr().out
    full, full_data = report_cells(p.path / f"full/{MODEL}.json")
    merged, data = report_cells(p.path / f"merged/{MODEL}.json")
    assert merged == full and len(merged) == 4
    assert data["complete"] is True and data["ids"] == full_data["ids"]
    assert data["scope"]["shard"] is None and data["scope"]["selected"] == data["scope"]["total"] == 4
    assert data["scope"]["cells_hash"] == full_data["scope"]["cells_hash"]
    assert (p.path / f"merged/{MODEL}.png").read_bytes()[:4] == b"\x89PNG"


def test_merge_of_a_missing_or_repeated_shard_fails(suite, capsys, four_clean_cells):
    p = suite(four_clean_cells)
    p.runpytest(TINY, "--hac-samples=4", "--hac-shard=1/2").assert_outcomes(passed=2)
    shard1 = p.path / f"reports/{MODEL}.shard-1-of-2.json"

    assert _merge(shard1, "-o", p.path / "merged") == 2
    err = capsys.readouterr().err
    assert "2/2" in err and "missing" in err
    assert _merge(shard1, shard1, "-o", p.path / "merged") == 2
    err = capsys.readouterr().err
    assert "1/2" in err and "more than once" in err
    assert not (p.path / "merged").exists()


def test_merge_refuses_shards_of_runs_with_different_cells(suite, capsys, four_clean_cells):
    p = suite(four_clean_cells)
    p.runpytest(TINY, "--hac-samples=4", "--hac-shard=1/2").assert_outcomes(passed=2)
    p.makepyfile(test_cells=four_clean_cells.replace("[30, 60, 90]", "[30, 60, 80]"))
    p.runpytest(TINY, "--hac-samples=4", "--hac-shard=2/2").assert_outcomes(passed=2)
    shards = sorted((p.path / "reports").glob("*.shard-*.json"))
    assert len(shards) == 2
    assert _merge(*shards, "-o", p.path / "merged") == 2
    assert "different runs" in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["0/2", "3/2", "x"])
def test_bad_shard_is_a_usage_error(suite, shard, four_clean_cells):
    result = suite(four_clean_cells).runpytest(f"--hac-shard={shard}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hac-shard*"])
