"""The history store: one JSON file per complete run in a folder, never rewritten (``--hac-history=DIR``).

An entry is the run's report (:meth:`Report.to_dict`, the baseline format) with a ``run`` object
beside it: the UTC date, the git commit and branch (when run in a git checkout, or from GitHub
Actions' variables), whether the checkout had uncommitted changes, the host, and the CI run's
address. Versions and the machine are in the report's ``meta``. Entries are named
``<UTC time>-<model>[-<commit>].json``, so a folder listing sorts by time.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import HacError
from ..io.files import create_new, safe_stem
from .schema import Report

#: Seconds a git call may take before the entry goes without it (a run never waits on git).
GIT_TIMEOUT = 5.0
TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class HistoryEntry:
    """One run of the history: where it is stored, its report and its ``run`` metadata."""

    path: Path
    report: Report
    run: dict[str, Any]

    @property
    def date(self) -> str:
        """``2026-12-03 07:23`` (UTC), or the file's name for an entry without a date."""
        return self.run.get("date", "")[:16].replace("T", " ") or self.path.stem

    @property
    def label(self) -> str:
        """``2026-12-03 07:23 a1b2c3d`` (date, time and short commit, as the trend shows a run)."""
        return f"{self.date} {(self.run.get('commit') or '')[:7]}".strip()


def _git(args: list[str], cwd: Path | None) -> str | None:
    """``git <args>``'s output, or None when git is missing, slow, or this is no checkout."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_metadata(cwd: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """What the history records about a run beyond its report: date, commit, branch, host, CI run."""
    env = os.environ if env is None else env
    commit = _git(["rev-parse", "HEAD"], cwd) or env.get("GITHUB_SHA")
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch in (None, "HEAD"):  # detached, as CI checks out pull-request heads
        branch = env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or branch
    dirty = None
    if commit is not None:
        status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
        dirty = None if status is None else bool(status)
    ci = None
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        ci = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}/actions/runs/" \
             f"{env['GITHUB_RUN_ID']}"
    return {"date": datetime.now(timezone.utc).isoformat(timespec="microseconds"), "commit": commit,
            "branch": branch, "dirty": dirty, "host": platform.node(), "ci_run": ci}


def recordable(report: Report) -> str | None:
    """Why ``report`` does not go into the history (None when it does): only complete, whole runs do."""
    if not report.complete:
        return "the run is incomplete"
    if report.scope.shard is not None:
        return "a shard is recorded after the merge (pytest-hac merge --history DIR)"
    if report.scope.partial:
        return f"a selection ({report.scope.selected} of {report.scope.total} cells) is not the whole run"
    if not report.cells:
        return "the run has no cells"
    return None


def record_history(report: Report, directory: Path, *, cwd: Path | None = None) -> Path | None:
    """Add ``report`` to the history in ``directory`` as a new file; returns its path.

    Returns None, writing nothing, for a run that is not complete and whole (see :func:`recordable`).
    An earlier entry is never rewritten: two runs in the same microsecond get ``-2``, ``-3`` names.
    """
    if recordable(report) is not None:
        return None
    run = run_metadata(cwd)
    stamp = datetime.fromisoformat(run["date"]).strftime(TIME_FORMAT)
    stem = f"{stamp}-{safe_stem(report.model)}" + (f"-{run['commit'][:12]}" if run["commit"] else "")
    text = json.dumps({**report.to_dict(), "run": run}, indent=1) + "\n"
    directory = Path(directory)
    for attempt in range(1, 1000):
        path = directory / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        if create_new(path, text):
            return path
    raise HacError(f"history folder {directory}: 999 entries named {stem}*.json already; clean it up")


def load_history(directory: Path, model: str | None = None) -> tuple[list[HistoryEntry], list[str]]:
    """Every readable entry in ``directory`` (of ``model`` when given), oldest first, and notes on the files
    left out (damaged, of another schema, of another model)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise HacError(f"history folder {directory} does not exist: runs with --hac-history={directory} create it")
    entries, notes, others = [], [], {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            run = data.pop("run", {}) if isinstance(data, dict) else {}
            report = Report.from_dict(data)
        except (OSError, ValueError, HacError) as exc:  # JSONDecodeError is a ValueError
            notes.append(f"{path.name} left out: {str(exc).splitlines()[0][:200]}")
            continue
        if model is not None and report.model != model:
            others[report.model] = others.get(report.model, 0) + 1
            continue
        entries.append(HistoryEntry(path, report, run if isinstance(run, dict) else {}))
    if others:
        notes.append("runs of other models left out: " + ", ".join(f"{m} ({k})" for m, k in sorted(others.items())))
    entries.sort(key=lambda e: (e.run.get("date", ""), e.path.name))
    return entries, notes
