"""Items 1-3 of the soundness issue in every channel: a masked path or a false stand-in fails every cell that
relies on it (the adaptive and worst cells included) in the terminal, JUnit, the JSON, under ``-n 2`` and in
merged shards; the merge refuses shards run with other settings; no threshold is recorded from a flagged cell."""
import json
import tomllib
import xml.etree.ElementTree as ET

import pytest

from pytest_hac.__main__ import main as hac_main

from .conftest import CELLS, FLAGGED


def verdicts(path) -> dict[str, str]:
    return {c["case_id"]: c["verdict"] for c in json.loads(path.read_text())["results"]}


def junit(path) -> dict[str, str]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cell = case.get("name").split("[", 1)[1].rsplit("]", 1)[0]  # the cell, whatever xdist appends
        out[cell] = "failed" if case.find("failure") is not None else "passed"
    return out


def test_a_masked_path_or_a_false_stand_in_fails_every_cell_that_relies_on_it(planted_runs):
    out = planted_runs.output["serial"]
    assert planted_runs.status["serial"] == 1
    assert f"{len(FLAGGED)} failed, {CELLS - len(FLAGGED)} passed" in out
    data = json.loads((planted_runs.folders["serial"] / "reports/tiny-cnn.json").read_text())
    cells = {c["case_id"]: c for c in data["results"]}
    assert {i for i, c in cells.items() if c["verdict"] == "failed"} == FLAGGED
    for case_id in FLAGGED:  # failed by soundness alone: every planted cell clears its gate on its number
        assert {r["kind"] for r in cells[case_id]["reasons"]} == {"soundness"}
        assert cells[case_id]["accuracy"] >= 0.5
    # item 1: the adaptive cell names the masked paths; the identity-backward path, which breaks every image at
    # 64/255, does not vouch for them
    adaptive = cells["flip-jpeg-q50-r1-adaptive-pgd-s5"]
    reason = adaptive["reasons"][0]["message"]
    assert reason.startswith("large-eps-through-defense:") and "path `bpda` (" in reason
    assert "path `approximate` (" in reason and "bpda-identity" not in reason
    probe = adaptive["diagnostics"]["large_eps"]
    assert probe["paths"]["bpda-identity"] <= 1 and probe["paths"]["bpda"] > 0.05 * probe["n"]
    # item 2: the worst cell inherits its parts' findings, the part named
    worst = cells["flip-jpeg-q50-r1-worst"]["reasons"]
    assert any(r["message"].startswith("its part flip-jpeg-q50-r1-adaptive-pgd-s5 is flagged: large-eps")
               for r in worst)
    # item 3: the blur is not JPEG q10's function; the stand-in table says how far it is
    blur = cells["blur-jpeg-q10-r1-whitebox-pgd-s5"]
    assert blur["reasons"][0]["message"].startswith("stand-in-fidelity:")
    assert blur["diagnostics"]["stand_in"]["distance"] > 0.8
    md = (planted_runs.folders["serial"] / "reports/tiny-cnn.md").read_text()
    assert "### Stand-ins against the decoded images" in md
    assert "| `blur-jpeg-q10-r1` |" in md and "| `flip-jpeg-q50-r1` |" in md
    # the terminal names each failed cell with its reason
    for case_id in FLAGGED:
        assert f"{case_id}: soundness:" in out
    # JUnit says the same
    assert junit(planted_runs.folders["serial"] / "junit.xml") == {i: c["verdict"] for i, c in cells.items()}


def test_xdist_and_merged_shards_reach_the_same_verdicts(planted_runs, capsys):
    serial = verdicts(planted_runs.folders["serial"] / "reports/tiny-cnn.json")
    assert planted_runs.status["xdist"] == 1
    assert verdicts(planted_runs.folders["xdist"] / "reports/tiny-cnn.json") == serial
    assert junit(planted_runs.folders["xdist"] / "junit.xml") == serial
    reports = planted_runs.folders["shards"] / "reports"
    shards = [str(reports / f"tiny-cnn.shard-{i}-of-2.json") for i in (1, 2)]
    for i, order in enumerate((shards, shards[::-1])):
        assert hac_main(["merge", *order, "--output", str(reports / f"merged-{i}")]) == 1
        assert verdicts(reports / f"merged-{i}" / "tiny-cnn.json") == serial


@pytest.mark.parametrize("reverse", [False, True])
def test_merge_refuses_a_shard_run_with_other_settings_in_either_order(planted_runs, capsys, reverse):
    reports = planted_runs.folders["warn"] / "reports"
    shards = [str(reports / f"tiny-cnn.shard-{i}-of-2.json") for i in (1, 2)]
    assert planted_runs.status["warn"] == 0  # flagged, not failed: its own verdicts are warnings
    assert hac_main(["merge", *(shards[::-1] if reverse else shards), "--output", str(reports / "merged")]) == 2
    err = capsys.readouterr().err
    assert "--hac-soundness differs (warn (shard 1/2), fail (shard 2/2))" in err


def test_no_threshold_is_recorded_from_a_flagged_cell(planted_runs):
    folder = planted_runs.folders["update"]
    table = tomllib.loads((folder / "thresholds.toml").read_text())["tiny-cnn"]
    assert set(table) == {f"{d}-r1-{t}" for d in ("flip-jpeg-q50", "blur-jpeg-q10")
                          for t in ("clean", "oblivious-pgd-s5")}
    out = planted_runs.output["update"]
    assert f"recorded no threshold for {len(FLAGGED)} flagged cell(s)" in out
    assert "flip-jpeg-q50-r1-adaptive-pgd-s5: not recorded, a soundness finding flags it " \
           "(large-eps-through-defense)" in out
