"""Baselines: save, compare, fail on significant drops only, and refuse what cannot be compared."""
import json

import pytest


def test_first_compare_without_baseline_passes_and_says_so(project):
    result = project.runpytest("--hac-model=mymodel:build", "--hac-samples=6", "--hac-compare")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no baseline 'mymodel_build'*nothing compared*--hac-save-baseline*"])


def test_save_then_compare_unchanged_model(project):
    project.runpytest("--hac-model=mymodel:build", "--hac-save-baseline").assert_outcomes(passed=1)
    saved = json.loads((project.path / ".hac/baselines/mymodel_build.json").read_text())
    assert saved["model"] == "mymodel:build" and "torch" in saved["meta"]["versions"]
    result = project.runpytest("--hac-model=mymodel:build", "--hac-compare", "--hac-fail-drop=2")
    result.assert_outcomes(passed=1)
    md = (project.path / "reports/mymodel_build.md").read_text()
    assert "(Δ +0.0)" in md


def test_significant_drop_fails_noise_of_the_same_size_does_not(project, monkeypatch):
    project.runpytest("--hac-model=mymodel:build", "--hac-save-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("DEGRADE", "1")
    result = project.runpytest("--hac-model=mymodel:build", "--hac-compare", "--hac-fail-drop=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*jpeg-q75-r1-clean: regression: dropped * points against baseline*shared images*"
                                 "paired p=*"])
    md = (project.path / "reports/mymodel_build.md").read_text()
    assert "worst regressions against the baseline" in md and "⚠" in md

    # The same model change on 3 images: a drop of one image is not significant.
    monkeypatch.delenv("DEGRADE")
    project.runpytest("--hac-model=mymodel:build", "--hac-samples=3", "--hac-save-baseline=small")
    monkeypatch.setenv("DEGRADE", "1")
    small = project.runpytest("--hac-model=mymodel:build", "--hac-samples=3", "--hac-compare=small",
                              "--hac-fail-drop=2")
    small.assert_outcomes(passed=1)


def test_compare_fail_without_a_baseline_is_an_error_unless_allowed(project):
    result = project.runpytest("--hac-model=mymodel:build", "--hac-samples=4", "--hac-compare", "--hac-fail-drop=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hac-fail-drop needs baseline*does not exist*--hac-strictness=lenient*"])
    first = project.runpytest("--hac-model=mymodel:build", "--hac-samples=4", "--hac-compare", "--hac-fail-drop=2",
                              "--hac-strictness=lenient")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*no baseline 'mymodel_build'*nothing compared*"])


ATTACKED = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["oblivious"], attack="pgd", eps="8/255", steps=STEPS)
def test_attacked(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""


def test_a_weaker_attack_is_not_comparable_with_the_baseline(suite):
    tiny = ["--hac-model=tiny-cnn", "--hac-samples=24", "--hac-soundness=warn"]
    p = suite(ATTACKED.replace("STEPS", "5"))
    p.runpytest(*tiny, "--hac-save-baseline").assert_outcomes(passed=1)
    p.makepyfile(test_cells=ATTACKED.replace("STEPS", "1"))  # same cell id, a much weaker attack
    shown = p.runpytest(*tiny, "--hac-compare")
    shown.assert_outcomes(passed=1)  # plain --hac-compare only reports it
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "not comparable with the baseline: the attack differs: baseline pgd Linf eps=8/255 steps=5" in md
    gated = p.runpytest(*tiny, "--hac-compare", "--hac-fail-drop=2")
    gated.assert_outcomes(failed=1)
    gated.stdout.fnmatch_lines(["*baseline: not comparable with baseline 'tiny-cnn': the attack differs: baseline "
                                "pgd Linf eps=8/255 steps=5*this run pgd Linf eps=8/255 steps=1*"])


def test_delta_is_computed_on_the_images_both_runs_share(suite):
    tiny = ["--hac-model=tiny-cnn", "--hac-soundness=warn"]
    p = suite(ATTACKED.replace("STEPS", "3"))
    p.runpytest(*tiny, "--hac-samples=128", "--hac-save-baseline").assert_outcomes(passed=1)
    p.runpytest(*tiny, "--hac-samples=64", "--hac-compare", "--hac-fail-drop=2").assert_outcomes(passed=1)
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    base = data["results"][0]["baseline"]
    # The 64 images are a subset of the 128 (one seed): per image the same model gives the same outcome.
    assert base["compared"] == 64 and base["of"] == 128 and base["baseline"] == base["current"]
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "(Δ +0.0)" in md and "on 64 of the baseline's 128 images" in md


def test_baseline_of_another_model_is_a_clear_error(project):
    project.runpytest("--hac-model=mymodel:build", "--hac-samples=4", "--hac-save-baseline=shared")
    result = project.runpytest("--hac-samples=4", "--hac-compare=shared")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baseline*recorded for model 'mymodel:build', not 'efficientnet-lite0'*"])


def test_baseline_of_another_schema_is_a_clear_error(project):
    base = project.path / ".hac/baselines"
    base.mkdir(parents=True)
    (base / "old.json").write_text(json.dumps({"schema": 0, "results": []}))
    result = project.runpytest("--hac-compare=old")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*report schema 0 is not supported*"])
