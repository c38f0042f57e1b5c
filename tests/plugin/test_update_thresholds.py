"""--hac-update-thresholds records thresholds from a run; the next run is gated by them (and catches a worse model)."""
import json
import tomllib

NOISY_MODEL = """
import os
import torch
from pytest_hac.models import get_model


def build():
    model = get_model("tiny-cnn")
    if os.environ.get("NOISY"):  # a planted regression: noise on every weight
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * p.std() * 1.5)
    return model
"""
CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50], "identity": []}, threats=["clean", "oblivious"], attack="pgd", eps="4/255",
                 steps=2, min_accuracy=0.99)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""
HAND_WRITTEN = """# Gates of this project: keep this comment.
[resnet50]
"identity-r1-clean" = 0.9   # from the paper

["mymodel:build"]
"jpeg-*-clean" = 0.1  # hand-written pattern
"""
ARGS = ("--hac-model=mymodel:build", "--hac-data=digits", "--hac-samples=16", "--hac-gallery=0")


def test_record_then_gate_passes_the_same_model_and_fails_a_worse_one(suite, pytester, monkeypatch):
    p = suite(CELLS)
    pytester.makepyfile(mymodel=NOISY_MODEL)
    pytester.syspathinsert()
    path = p.path / "hac_thresholds.toml"
    path.write_text(HAND_WRITTEN)

    recorded = p.runpytest(*ARGS, "--hac-update-thresholds")
    recorded.assert_outcomes(passed=4)  # the marker's 0.99 does not gate a recording run
    text = path.read_text()
    assert text.startswith(HAND_WRITTEN)  # other tables, comments and the pattern untouched
    table = tomllib.loads(text)["mymodel:build"]
    assert set(table) == {"jpeg-*-clean", "jpeg-q50-r1-clean", "jpeg-q50-r1-oblivious-pgd-s2", "identity-r1-clean",
                          "identity-r1-oblivious-pgd-s2"}
    data = p.path / "reports" / "mymodel_build.json"
    for cell in json.loads(data.read_text())["results"]:  # measured on these images minus the margin, not an interval
        assert table[cell["case_id"]] <= cell["accuracy"] - 0.02 < table[cell["case_id"]] + 0.01
    out = recorded.stdout.str()
    assert "wrote 4 thresholds (measured accuracy on these 16 images - 0.02" in out
    assert '[mymodel:build] "jpeg-q50-r1-clean" = ' in out
    assert str(path) in out

    p.runpytest(*ARGS).assert_outcomes(passed=4)  # the same model passes its recorded gates

    monkeypatch.setenv("NOISY", "1")
    worse = p.runpytest(*ARGS)
    assert worse.ret == 1
    worse.stdout.fnmatch_lines(["FAILED *test_cells[[]identity-r1-clean[]]*"])  # the recorded gate catches it


def test_margin_and_an_explicit_file_that_does_not_exist_yet(suite, pytester):
    p = suite(CELLS)
    target = p.path / "gates" / "thresholds.toml"
    result = p.runpytest("--hac-model=tiny-cnn", "--hac-samples=8", "--hac-gallery=0", "-k", "jpeg and clean",
                         f"--hac-thresholds={target}", "--hac-update-thresholds=0.1")
    result.assert_outcomes(passed=1)
    table = tomllib.loads(target.read_text())["tiny-cnn"]
    data = json.loads((p.path / "reports" / "tiny-cnn.selection.json").read_text())
    measured = data["results"][0]["accuracy"]
    assert list(table) == ["jpeg-q50-r1-clean"] and table["jpeg-q50-r1-clean"] <= measured - 0.1 < table[
        "jpeg-q50-r1-clean"] + 0.01
    assert not (p.path / "hac_thresholds.toml").exists()


def test_a_cell_measured_at_zero_gets_no_threshold(suite, pytester):
    """A threshold of 0 gates nothing and would turn "measured" into "passed": such a cell is said, not written."""
    p = suite(CELLS.replace('eps="4/255"', 'eps="64/255"').replace("steps=2", "steps=10"))
    target = p.path / "t.toml"
    result = p.runpytest("--hac-model=tiny-cnn", "--hac-samples=16", "--hac-gallery=0", "--hac-soundness=warn",
                         "-k", "identity", "--hac-update-thresholds", f"--hac-thresholds={target}")
    result.assert_outcomes(passed=2)
    table = tomllib.loads(target.read_text())["tiny-cnn"]
    assert list(table) == ["identity-r1-clean"]
    result.stdout.fnmatch_lines(["*wrote no threshold for 1 cell(s) measured at about 0, where a threshold gates "
                                 "nothing: identity-r1-oblivious-pgd-eps64 (0.00)*"])
