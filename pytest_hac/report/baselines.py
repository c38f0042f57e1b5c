"""Baselines on disk: a saved report under ``<baseline dir>/<name>.json``, in the manner of pytest-benchmark."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import HacError
from ..io.files import atomic_write, safe_stem
from .schema import Report, load_report


def baseline_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{safe_stem(name)}.json"


def save_baseline(report: Report, directory: Path, name: str) -> Path:
    """Store the whole report as baseline ``name`` (replacing an older one completely)."""
    path = baseline_path(directory, name)
    atomic_write(path, json.dumps(report.to_dict(), indent=1) + "\n")
    return path


def load_baseline(directory: Path, name: str, *, model: str, dataset: str | None,
                  required: bool = False) -> Report | None:
    """The baseline, or None when there is none yet (a first run passes and says so).

    With ``required`` (``--hac-fail-drop``) a missing baseline is an error: a CI job
    whose baseline went missing would otherwise gate nothing.
    """
    path = baseline_path(directory, name)
    if not path.exists():
        if required:
            raise HacError(f"--hac-fail-drop needs baseline {path}, which does not exist: a gate against a missing "
                           f"baseline gates nothing. Restore it, save one with --hac-save-baseline, or pass "
                           f"--hac-strictness=lenient (ini hac_strictness = lenient) for a first run")
        return None
    base = load_report(path)
    if base.model != model:
        raise HacError(f"baseline {path} was recorded for model {base.model!r}, not {model!r}: compare against a "
                       f"baseline of the same model (--hac-compare=NAME) or save a new one (--hac-save-baseline)")
    if dataset is not None and base.dataset != dataset:
        raise HacError(f"baseline {path} was recorded on data {base.dataset!r}, not {dataset!r}: compare like with "
                       f"like or save a new baseline")
    return base
