"""--hac-plan lists the cells with their work, the soundness probes and loading, and an estimate, and evaluates
nothing."""
import re

import pytest

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
        # the soundness probes, each once however many cells read it (identity's white-box large-eps probe is
        # the undefended one: the same attack on the same 8 images)
        "zero-gradient *3 *8 *24 fwd+bwd",
        "large-eps *2 *8 *48 fwd+bwd, 16 codec, 16 classified",
        "undefended large-eps *1 *8 *24 fwd+bwd, 8 classified",
        "warm-up (*s, batches of 8), ms per image: classify *; gradient model *; codec jpeg q25 *",
        "cells *392 attack passes *s",
        "soundness probes *96 attack passes *s",
        "loading *model, data and codecs (measured) *s",
        "total *s",
        "estimated: * in all (cells *, soundness probes *, loading *; reports not counted); nothing was evaluated "
        "(--hac-plan)"])
    # per cell, the probes it runs first: the oblivious q25 cell the bare model's zero-gradient and undefended
    # probes (8 + 24 passes); a cell whose probes ran before shows none
    assert re.search(r"^jpeg-q25-r1-oblivious-pgd-s3 .* 32 +[\d.]+$", out, re.M)
    assert re.search(r"^jpeg-q75-r1-oblivious-pgd-s3 .* – +–$", out, re.M)
    line = r"estimated: ([\d.]+) s in all \(cells ([\d.]+) s, soundness probes ([\d.]+) s, loading ([\d.]+) s"
    total, cells, probes, loading = (float(x) for x in re.search(line, out).groups())
    assert loading > 0 and total == pytest.approx(cells + probes + loading, abs=1.5)  # each rounded
    assert not (p.path / "reports").exists()
