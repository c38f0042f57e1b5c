"""The shipped suites gate for real: they fail a model that is not robust."""
from pathlib import Path

SMOKE = (Path(__file__).parents[2] / "suites" / "test_smoke.py").read_text()

WEAK = """
import torch
from pytest_hac.models import get_model


def build():
    '''EfficientNet-Lite0 with its stem convolution re-initialised: deliberately broken.'''
    model = get_model("efficientnet-lite0")
    torch.manual_seed(0)
    torch.nn.init.normal_(model.net[1]._conv_stem.weight, std=1.0)  # net = Normalize, EfficientNet
    return model
"""


def test_smoke_suite_fails_a_weakened_model(pytester):
    pytester.makepyfile(test_smoke=SMOKE, weak=WEAK)
    pytester.syspathinsert()
    # the clean cells only: they are the ones the broken stem fails for sure, and they need no attack
    result = pytester.runpytest("--hac-model=weak:build", "--hac-samples=8", "-k", "clean")
    result.assert_outcomes(failed=7)  # every gated clean cell
    result.stdout.fnmatch_lines(["*jpeg-q25-r1-clean: accuracy * is below the threshold 0.6 *",
                                 "*FAILED*jpeg-q25-r1-clean*"])


def test_undefended_model_fails_a_robustness_gate(pytester):
    # the embedded default is the subject; 4 photos and 3 steps already take every one of them
    pytester.makepyfile("""
import pytest

@pytest.mark.hac(codecs={"identity": []}, threats=["oblivious"], attack="pgd", eps="4/255", steps=3,
                 min_accuracy=0.25)
def test_gate(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
""")
    result = pytester.runpytest("--hac-samples=4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*identity-r1-oblivious-pgd-s3: accuracy 0.0* is below the threshold 0.25 *"])


def test_smoke_suite_collects_its_matrix(pytester):
    pytester.makepyfile(test_smoke=SMOKE)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*20 tests collected*"])


def test_pytest_suites_is_the_quick_job_and_the_paper_and_codecs_suites_run_when_named(pytester):
    root = Path(__file__).parents[2]

    def collected(*paths):
        """The node ids ``pytest --collect-only paths`` lists from the repository root (in-process: the
        project's ini, rootdir and conftests, without starting a process per command)."""
        result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", f"--rootdir={root}",
                                    "-c", str(root / "pyproject.toml"), *(str(root / path) for path in paths))
        assert result.ret == 0, result.stdout.str()[-2000:]
        return [line for line in result.outlines if "::" in line]

    main = collected("suites")
    assert main and all(line.startswith("suites/test_smoke.py::") for line in main)
    codecs = collected("suites/codecs")
    assert len(codecs) == 4 * 3 * 3
    assert "suites/codecs/test_codecs.py::test_codecs_at_comparable_rates[avif-q62-r1-adaptive-pgd]" in codecs
    paper = collected("suites/paper")
    assert any("test_miniature_linf[tiny-hific-q2-r1-oblivious-pgd-eps4]" in line for line in paper)
    assert collected("suites/paper/test_miniature.py::test_miniature_rounds") == [
        line for line in paper if "test_miniature_rounds[" in line]


def test_the_paper_suite_runs_its_miniature_without_the_papers_weights(pytester):
    """The embedded model runs the miniature: the paper-scale module (ELIC, HiFiC) is not collected, so
    the run neither plans nor loads their codecs (before, a clean-cell selection failed asking for ELIC weights)."""
    root = Path(__file__).parents[2]
    args = ["-p", "no:cacheprovider", f"--rootdir={root}", "-c", str(root / "pyproject.toml"),
            str(root / "suites/paper"), f"--hac-report-dir={pytester.path / 'reports'}"]
    listed = pytester.runpytest("--collect-only", "-q", *args)
    assert not [line for line in listed.outlines if "::" in line and ("elic" in line or "[hific-" in line)]
    # nothing deselected: the miniature is the whole run, so its report is <model>.md and not a selection's
    assert "deselected" not in listed.stdout.str() and "106 tests collected" in listed.stdout.str()
    paper_scale = pytester.runpytest("--collect-only", "-q", "--hac-model=resnet50", *args)
    assert any("elic-q3" in line for line in paper_scale.outlines)
    run = pytester.runpytest("--hac-samples=2", "-k", "test_miniature_linf and identity and clean", *args)
    assert run.ret == 0, run.stdout.str()[-2000:]
    run.assert_outcomes(passed=1)
