"""--hac-cache keeps what the engine computed on disk; `pytest-hac clear-cache DIR` empties pytest-hac's folder only."""
from pytest_hac.__main__ import main

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50], "identity": []}, threats=["clean"])
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def test_cache_fills_and_clear_cache_empties_it(suite):
    p = suite(CELLS, ini="hac_samples = 2")
    p.runpytest("--hac-cache=cache").assert_outcomes(passed=2)
    entries = list((p.path / "cache/hac-v1").glob("*/*.pt"))
    assert len(entries) == 3  # JPEG's output and the per-image outcomes of both cells
    (p.path / "cache/README.txt").write_text("a file of the user's")
    assert main(["clear-cache", str(p.path / "cache")]) == 0
    assert not (p.path / "cache/hac-v1").exists()
    assert (p.path / "cache/README.txt").exists()  # only pytest-hac's own folder is removed
    result = p.runpytest("-v", "--hac-cache=cache")
    result.assert_outcomes(passed=2)
    assert "[hac " not in result.stdout.str()  # not a terminal: no status line
