"""The history store (--hac-history): one new file per complete run, never rewritten, git when there is one."""
import json
import subprocess
from dataclasses import replace

import pytest

from pytest_hac.report import history
from pytest_hac.report.history import load_history, record_history
from pytest_hac.report.schema import Scope

ALL_RIGHT = [True] * 8


def test_an_entry_is_the_report_plus_the_run(tmp_path, synthetic):
    rep = synthetic.report({"jpeg-q50-r1-clean": ALL_RIGHT})
    path = record_history(rep, tmp_path / "hist")
    data = json.loads(path.read_text())
    assert {k: v for k, v in data.items() if k != "run"} == rep.to_dict()
    assert set(data["run"]) == {"date", "commit", "branch", "dirty", "host", "ci_run"}
    assert data["run"]["date"].endswith("+00:00")  # UTC
    assert path.name.startswith(data["run"]["date"][:4]) and "-tiny-cnn" in path.name
    [entry], notes = load_history(tmp_path / "hist")
    assert entry.report.to_dict() == rep.to_dict() and notes == []


def test_two_runs_in_the_same_instant_get_two_entries_and_the_first_is_kept(tmp_path, synthetic, monkeypatch):
    first, second = synthetic.report({"c": ALL_RIGHT}), synthetic.report({"c": [False] * 8})
    fixed = {"date": "2026-12-03T07:00:00.000000+00:00", "commit": None, "branch": None, "dirty": None,
             "host": "h", "ci_run": None}
    monkeypatch.setattr(history, "run_metadata", lambda cwd=None: dict(fixed))
    a = record_history(first, tmp_path)
    before = a.read_bytes()
    b = record_history(second, tmp_path)
    assert a != b and b.name == a.stem + "-2.json"
    assert a.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])  # no temporary files left
    monkeypatch.undo()
    names = {record_history(first, tmp_path).name for _ in range(3)}  # back-to-back real runs, same second
    assert len(names) == 3 and len(list(tmp_path.glob("*.json"))) == 5


@pytest.mark.parametrize("change, why", [
    ({"complete": False}, "incomplete"),
    ({"scope": Scope(1, 2, (1, 2), "h")}, "merge --history"),
    ({"scope": Scope(1, 2, None, "h")}, "selection"),
])
def test_only_complete_whole_runs_are_recorded(tmp_path, synthetic, change, why):
    rep = replace(synthetic.report({"c": ALL_RIGHT}), **change)
    assert why in history.recordable(rep)
    assert record_history(rep, tmp_path / "hist") is None and not (tmp_path / "hist").exists()


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_commit_and_branch_from_the_checkout_and_none_without_git(tmp_path, synthetic, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "nightly")
    (repo / "f").write_text("x")
    _git(repo, "add", "f")
    _git(repo, "commit", "-qm", "c")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    rep = synthetic.report({"c": ALL_RIGHT})
    path = record_history(rep, tmp_path / "hist", cwd=repo)
    run = json.loads(path.read_text())["run"]
    assert (run["commit"], run["branch"], run["dirty"]) == (head, "nightly", False)
    assert path.stem.endswith(head[:12])
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git at all: the run is recorded without it
    for name in ("GITHUB_SHA", "GITHUB_HEAD_REF", "GITHUB_REF_NAME"):
        monkeypatch.delenv(name, raising=False)
    path = record_history(rep, tmp_path / "hist", cwd=repo)
    run = json.loads(path.read_text())["run"]
    assert run["commit"] is None and run["branch"] is None and path.stem.endswith("-tiny-cnn")


def test_load_history_leaves_out_damaged_entries_and_other_models_saying_so(tmp_path, synthetic):
    record_history(synthetic.report({"c": ALL_RIGHT}), tmp_path)
    record_history(synthetic.report({"c": ALL_RIGHT}, model="other"), tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    entries, notes = load_history(tmp_path, "tiny-cnn")
    assert [e.report.model for e in entries] == ["tiny-cnn"]
    assert any("broken.json left out" in n for n in notes) and any("other (1)" in n for n in notes)
