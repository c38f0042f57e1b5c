"""--hac-plan lists the cells with their work and an estimate, and evaluates nothing."""

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [25, 75], "identity": []}, threats=["clean", "oblivious", "whitebox", "query"],
                 attack="pgd", eps="4/255", steps=3, queries=20)
def test_cells(hac_case, hac_evaluate):
    raise AssertionError("--hac-plan must not run a cell")
"""


def test_plan_lists_cells_work_and_estimate_without_evaluating(suite):
    p = suite(CELLS)
    result = p.runpytest("--hac-model=tiny-cnn", "--hac-samples=8", "--hac-plan", "-k", "not identity-r1-query")
    assert result.ret == 0
    out = result.stdout.str()
    assert "must not run" not in out and not {"passed", "failed", "errors"} & set(result.parseoutcomes())
    result.stdout.fnmatch_lines([
        "*pytest-hac plan*", "model tiny-cnn · 8 images · device cpu · 11 cells",
        "jpeg-q25-r1-oblivious-pgd*8 images x 3 steps x 1 restarts*24*",
        "jpeg-q25-r1-query-square*8 images x 20 queries x 1 restarts*160*",
        "jpeg-q75-r1-oblivious-pgd*shared*",
        "warm-up (*s, batches of 8), ms per image: classify *; gradient model *; codec jpeg q25 *",
        "estimated: * for the cells *nothing was evaluated (--hac-plan)"])
    assert not (p.path / "reports").exists()
