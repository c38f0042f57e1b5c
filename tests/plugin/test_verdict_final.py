"""A cell's verdict is decided once, inside its own test call: pytest, JUnit, the report, shards,
selections and merges agree, whatever order cells run in and whatever the test body asserts."""
import json
import xml.etree.ElementTree as ET

from pytest_hac.__main__ import main as hac_main

TINY = ("--hac-model=tiny-cnn", "--hac-samples=32")

#: A codec whose differentiable stand-in is a constant: the white-box attacker has no gradient at all.
MASKED = """
import torch
from pytest_hac.codecs.jpeg import Jpeg


class ConstantApproximation(Jpeg):
    name = "masked"

    def approximate(self, x):
        return torch.full_like(x, 0.5) + 0 * x


def pytest_hac_register(registry, config):
    registry.register_codec("masked", lambda q, **_: ConstantApproximation(q), qualities=range(1, 101),
                            description="planted: gradient masking", replace=True)
"""

MASKED_CELLS = """
import pytest

@pytest.mark.hac(codecs={"masked": [90]}, threats=["clean", "oblivious", "whitebox"], attack="pgd", eps="8/255",
                 steps=5)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""

#: A conftest that runs the cells in reverse order: the white-box cell before the oblivious one it is
#: compared with.
REVERSED = """
def pytest_collection_modifyitems(items):
    items.reverse()
"""


def _junit(path) -> dict[str, str]:
    """test name -> 'passed' / 'failed' from a JUnit XML file."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        out[case.get("name")] = "failed" if case.find("failure") is not None else "passed"
    return out


def _verdicts(path) -> dict[str, str]:
    return {r["case_id"]: r["verdict"] for r in json.loads(path.read_text())["results"]}


def test_the_markers_threshold_fails_a_body_that_asserts_nothing(suite):
    p = suite("""
import pytest

@pytest.mark.hac(codecs={"identity": []}, threats=["oblivious"], eps="8/255", min_accuracy=0.9)
def test_silent(hac_case, hac_evaluate):
    hac_evaluate(hac_case)  # asserts nothing

@pytest.mark.hac(codecs={"identity": []}, threats=["oblivious"], eps="8/255", min_accuracy=0.9)
def test_looser(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(0.0)  # a looser number cannot relax the marker's gate

@pytest.mark.hac(codecs={"identity": []}, threats=["clean"])
def test_never_evaluates(hac_case):
    pass  # no threshold: measured all the same, never silently skipped
""")
    result = p.runpytest(*TINY, "--junitxml=out.xml")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*identity-r1-oblivious-pgd-eps8: threshold: *is below the threshold 0.9*"])
    assert _junit(p.path / "out.xml") == {"test_silent[identity-r1-oblivious-pgd-eps8]": "failed",
                                          "test_looser[identity-r1-oblivious-pgd-eps8]": "failed",
                                          "test_never_evaluates[identity-r1-clean]": "passed"}
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert {r["test"].split("::")[1]: r["verdict"] for r in data["results"]} == {
        "test_silent[identity-r1-oblivious-pgd-eps8]": "failed",
        "test_looser[identity-r1-oblivious-pgd-eps8]": "failed",
        "test_never_evaluates[identity-r1-clean]": "measured"}
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "**passed** 0 · **failed** 2 · **measured** 1 (no threshold)" in md


def test_cross_cell_findings_fail_the_cell_in_its_own_test_in_any_order(suite, pytester):
    p = suite(MASKED_CELLS)
    pytester.makeconftest(MASKED)
    full = p.runpytest(*TINY, "--junitxml=full.xml", "--hac-report-dir=full")
    full.assert_outcomes(passed=2, failed=1)
    assert _junit(p.path / "full.xml")["test_cells[masked-q90-r1-whitebox-pgd-eps8-s5]"] == "failed"
    expected = _verdicts(p.path / "full/tiny-cnn.json")
    assert expected["masked-q90-r1-whitebox-pgd-eps8-s5"] == "failed"

    pytester.makeconftest(MASKED + REVERSED)  # the white-box cell runs first: its verdict is still final
    backwards = p.runpytest(*TINY, "--junitxml=backwards.xml", "--hac-report-dir=backwards")
    backwards.assert_outcomes(passed=2, failed=1)
    assert _junit(p.path / "backwards.xml") == _junit(p.path / "full.xml")
    assert _verdicts(p.path / "backwards/tiny-cnn.json") == expected


def test_shards_and_selections_reach_the_full_runs_verdicts(suite, pytester, capsys):
    p = suite(MASKED_CELLS)
    pytester.makeconftest(MASKED)
    p.runpytest(*TINY, "--hac-report-dir=full").assert_outcomes(passed=2, failed=1)
    expected = _verdicts(p.path / "full/tiny-cnn.json")

    selected = p.runpytest(*TINY, "-k", "whitebox", "--hac-report-dir=selected")
    selected.assert_outcomes(failed=1)  # its oblivious twin was evaluated on demand, outside the selection
    assert _verdicts(p.path / "selected/tiny-cnn.selection.json") == {
        "masked-q90-r1-whitebox-pgd-eps8-s5": expected["masked-q90-r1-whitebox-pgd-eps8-s5"]}
    outcomes = {}
    for shard in ("1/2", "2/2"):
        run = p.runpytest(*TINY, f"--hac-shard={shard}")
        outcomes.update(run.parseoutcomes())
    shards = sorted((p.path / "reports").glob("tiny-cnn.shard-*.json"))
    verdicts = {}
    for shard in shards:
        verdicts.update(_verdicts(shard))
    assert verdicts == expected
    capsys.readouterr()
    assert hac_main(["merge", *map(str, shards), "-o", str(p.path / "merged")]) == 1
    out = capsys.readouterr().out
    assert "3 cells, 0 passed, 1 failed, 2 measured" in out and "FAILED masked-q90-r1-whitebox-pgd-eps8-s5" in out
    merged = json.loads((p.path / "merged/tiny-cnn.json").read_text())
    assert merged["meta"]["soundness"]["status"]["informed-not-weaker"] == "flagged"


#: A defense that changes nothing, whose differentiable stand-in hands back the gradient shifted by 2 pixels.
SHIFTED = """
import torch
from pytest_hac.codecs.base import Identity


class ShiftedGradient(Identity):
    name = "shifted"

    def approximate(self, x):
        shifted = torch.roll(x, shifts=2, dims=-1)
        return x.detach() + shifted - shifted.detach()


def pytest_hac_register(registry, config):
    registry.register_codec("shifted", lambda q, **_: ShiftedGradient(),
                            description="planted: a misleading gradient", replace=True)
"""


def test_a_masked_defense_fails_even_when_the_marker_has_no_oblivious_cell(suite, pytester):
    p = suite("""
import pytest

@pytest.mark.hac(codecs={"shifted": []}, threats=["clean", "whitebox"], attack="pgd", eps="8/255", steps=5)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
""")
    pytester.makeconftest(SHIFTED)
    result = p.runpytest(*TINY)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*shifted-r1-whitebox-pgd-eps8-s5: soundness: informed-not-weaker: *is above "
                                 "shifted-r1-oblivious-pgd-eps8-s5*"])
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert [r["case_id"] for r in data["references"]] == ["shifted-r1-oblivious-pgd-eps8-s5"]  # the on-demand twin
    assert data["meta"]["soundness"]["status"]["informed-not-weaker"] == "flagged"
