"""The README's nightly workflow, followed to the letter: its steps' own commands, run by bash as GitHub Actions
runs them (``-eo pipefail``), with the workflow's environment and only the model, data and device replaced.

Three nights into one history: the team's model (tiny-cnn behind a factory), the same again, then a commit
that degrades it (noise on the weights: JPEG q50 oblivious PGD drops about 12 points on 200 digits). Night 3
must fail, naming the cells with their Δ and p; a rerun of night 2's code must pass. Then pull-request runs
(a ``-k`` selection, a shard, no report at all) are held against the newest nightly run or say why not.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
SUITE = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50], "identity": []}, threats=["clean", "oblivious"], attack="pgd", eps="8/255",
                 steps=5)
def test_robustness(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
#: The team's model as a commit leaves it: ``NOISE`` is what the night-3 commit changes.
MODEL = """
import torch
from pytest_hac.models import get_model

NOISE = {noise}


def build():
    model = get_model("tiny-cnn")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * p.std() * NOISE)
    return model
"""
#: What the test replaces of the workflow's environment: a model, data and device this machine has.
OURS = {"HAC_MODEL": "team_model:build", "HAC_DATA": "digits", "HAC_DEVICE": "cpu", "HAC_SAMPLES": "200",
        "REPORT": "reports/team_model_build"}


def _workflow() -> dict:
    import yaml

    match = re.search(r"`\.github/workflows/robustness\.yml`:\n\n```\w*\n(.*?)```", README, re.S)
    assert match, "README has no workflow"
    return yaml.safe_load(match.group(1))


def _step(workflow: dict, starts: str) -> tuple[dict, str]:
    """The step whose name starts with ``starts``: its own env and its command."""
    [step] = [s for s in workflow["jobs"]["robustness"]["steps"] if s.get("name", "").startswith(starts)]
    return {k: str(v) for k, v in step.get("env", {}).items()}, step["run"]


class Runner:
    """Runs a workflow step in the project folder as GitHub Actions would (``bash -eo pipefail``)."""

    def __init__(self, folder: Path, event: str) -> None:
        self.folder = folder
        self.workflow = _workflow()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("HAC_", "PYTEST_"))
                and k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        self.env = {**base, **{k: str(v) for k, v in self.workflow["env"].items()}, **OURS,
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
                    "PYTHONPATH": str(folder), "GITHUB_EVENT_NAME": event,
                    "GITHUB_STEP_SUMMARY": str(folder / "step-summary.md")}

    def __call__(self, step: str, extra: str = "") -> subprocess.CompletedProcess:
        env, command = _step(self.workflow, step)
        command = command.strip() + (f" {extra}" if extra else "")
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=self.folder,
                              env={**self.env, **env, **OURS}, capture_output=True, text=True, timeout=600)


def _night(folder: Path, noise: float) -> subprocess.CompletedProcess:
    (folder / "team_model.py").write_text(MODEL.format(noise=noise))  # tonight's commit
    return Runner(folder, "schedule")("Nightly run")


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    folder = tmp_path_factory.mktemp("nightly")
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "tests/robustness").mkdir(parents=True)
    (folder / "tests/robustness/test_robustness.py").write_text(SUITE)
    (folder / ".hac/history").mkdir(parents=True)  # the History step's worktree (git and a remote: not run here)
    runs = [_night(folder, noise) for noise in (0.0, 0.0, 0.12)]
    runs.append(_night(folder, 0.0))  # night 2's code again
    return folder, runs


def _said(run: subprocess.CompletedProcess) -> str:
    return run.stdout + run.stderr


def test_the_workflow_fails_the_night_a_regression_happens_and_passes_a_rerun(nights):
    folder, (one, two, three, rerun) = nights
    assert one.returncode == 0, _said(one)[-3000:]
    assert two.returncode == 0, _said(two)[-3000:]
    assert three.returncode == 1, _said(three)[-3000:]
    failing = [line for line in three.stdout.splitlines() if line.startswith("pytest-hac: FAILED (--hac-fail-drop)")]
    # each failing cell named, with its Δ and p, against night 2
    assert any("step `jpeg-q50-r1-oblivious-pgd-eps8-s5`" in line for line in failing), _said(three)[-3000:]
    for line in failing:
        delta = float(re.search(r"\(([-+]\d+\.\d) points on 200 shared images", line).group(1))
        p = float(re.search(r"p=([0-9.e-]+)\)", line).group(1))
        assert delta < -3 and p < 0.05 and "from run 2" in line and "to run 3" in line, line
    assert rerun.returncode == 0, _said(rerun)[-3000:]  # night 2's code again: no step down, no drift
    # night 3's report (set aside by the rerun) says the news first: the trend drops, in red, with links
    md = (folder / "reports/team_model_build.previous.md").read_text().splitlines()
    assert md[2].startswith("**🔴 ") and md[2].endswith("to look at first:**")
    assert md[4].startswith("- 🔴 **trend drop** [`") and "](#trend-team_modelbuild-over-the-last-3-runs)" in md[4]
    assert any("`jpeg-q50-r1-oblivious-pgd-eps8-s5`" in line for line in md[4:8])
    assert "## Trend: team_model:build over the last 3 run(s)" in md
    html = (folder / "reports/team_model_build.previous.html").read_text()
    assert html.index("<div id='news' class='news'>") < html.index("<ul id='summary'>")
    assert "<b>trend drop</b> <a href='#cell-jpeg-q50-r1-oblivious-pgd-eps8-s5'>" in html
    # night 4 (night 2's code after night 3's noise) has no step down on the JPEG cells: its news does not name them
    night4 = (folder / "reports/team_model_build.html").read_text()
    assert "jpeg-q50" not in night4[night4.find("<div id='news'"):night4.index("<ul id='summary'>")]
    assert len(list((folder / ".hac/history").glob("*.json"))) == 4
    # the trend step and `trend --fail` see the same: night 3's step shows in the table
    trend = Runner(folder, "schedule")("Trend")
    assert trend.returncode == 0 and "▼" in trend.stdout
    assert (folder / "reports/team_model_build.trend.md").is_file()


def test_trend_fail_on_the_command_line_fails_on_night_3s_step(nights, tmp_path):
    folder, _ = nights
    from pytest_hac.__main__ import main as hac_main

    history = sorted((folder / ".hac/history").glob("*.json"))
    three = tmp_path / "three"
    three.mkdir()
    for entry in history[:3]:  # the history as night 3 left it
        (three / entry.name).write_bytes(entry.read_bytes())
    assert hac_main(["trend", str(three), "--fail=3", "-o", str(tmp_path / "out")]) == 1
    assert hac_main(["trend", str(folder / ".hac/history"), "--fail=3", "-o", str(tmp_path / "out")]) == 0


def test_a_reduced_pull_request_run_is_held_against_the_newest_nightly_run(nights):
    folder, _ = nights
    run = Runner(folder, "pull_request")
    for reduced, written, noise in [("-k jpeg", "team_model_build.selection.json", 0.0),
                                    ("--hac-shard=1/2", "team_model_build.shard-1-of-2.json", 0.0),
                                    ("-k jpeg", "team_model_build.selection.json", 0.12)]:  # a degrading change
        for old in (folder / "reports").glob("team_model_build.*"):
            old.unlink()
        (folder / "team_model.py").write_text(MODEL.format(noise=noise))
        assert run("Pull-request run", reduced).returncode == 0  # no thresholds: only the comparison gates
        assert (folder / "reports" / written).is_file()
        compared = run("Against the newest nightly run")
        assert f"reports/{written} (NEW)" in compared.stdout and "cells compared" in compared.stdout
        if noise:
            assert compared.returncode == 1 and "REGRESSION" in compared.stdout, _said(compared)
        else:
            assert compared.returncode == 0, _said(compared)
    (folder / "team_model.py").write_text(MODEL.format(noise=0.0))


def test_the_comparison_says_why_it_skipped(nights, tmp_path):
    folder, _ = nights
    run = Runner(folder, "pull_request")
    for old in (folder / "reports").glob("team_model_build.*"):
        old.unlink()
    skipped = run("Against the newest nightly run")
    assert skipped.returncode == 0
    assert "this run wrote no reports/team_model_build.json (nor .selection.json, .shard-I-of-N.json): nothing " \
           "to compare" in skipped.stdout
    empty = Runner(tmp_path, "pull_request")("Against the newest nightly run")
    assert empty.returncode == 0 and "no nightly run in .hac/history yet: nothing to compare" in empty.stdout
