"""Thresholds files and baseline comparison: what makes a cell pass or fail beyond its own threshold."""
from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import HacError
from .report import Report, atomic_write, load_report, safe_stem
from .result import Result
from .stats import SIGNIFICANCE_LEVEL as SIGNIFICANCE
from .stats import mcnemar_drop_pvalue, two_proportion_drop_pvalue


# --- thresholds files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """``[model]`` tables of ``"cell-pattern" = min_accuracy`` (``["*"]`` applies to every model)."""

    path: Path
    table: dict[str, dict[str, float]]

    @classmethod
    def load(cls, path: Path) -> "Thresholds":
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HacError(f"thresholds file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise HacError(f"thresholds file {path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise HacError(f"thresholds file {path} is not UTF-8 text ({exc}); save it as UTF-8 TOML") from None
        except OSError as exc:
            raise HacError(f"cannot read thresholds file {path}: {exc}") from None
        table: dict[str, dict[str, float]] = {}
        for model, cells in data.items():
            if not isinstance(cells, dict):
                raise HacError(f"{path}: {model!r} = {cells!r} is outside a table: put \"cell-pattern\" = accuracy "
                               f"lines under a [model] or [\"*\"] table header")
            for pattern, value in cells.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise HacError(f"{path}: [{model}] {pattern!r} = {value!r}: thresholds are fractions in [0, 1]")
            table[model] = {p: float(v) for p, v in cells.items()}
        return cls(Path(path), table)

    def patterns(self, model: str) -> dict[str, float]:
        merged = dict(self.table.get("*", {}))
        merged.update(self.table.get(model, {}))
        return merged

    def lookup(self, model: str, case_id: str) -> float | None:
        """The threshold of the last (most specific: model tables after ``*``) matching pattern."""
        found = None
        for pattern, value in self.patterns(model).items():
            if fnmatch.fnmatchcase(case_id, pattern):
                found = value
        return found

    def unused(self, model: str, case_ids: list[str]) -> list[str]:
        """Patterns for ``model`` (and of the ``["*"]`` table, shown as ``[*] pattern``) that match no cell:
        usually a typo that would silently gate nothing."""
        def idle(patterns: dict[str, float]) -> list[str]:
            return [p for p in patterns if not any(fnmatch.fnmatchcase(c, p) for c in case_ids)]

        return idle(self.table.get(model, {})) + [f"[*] {p}" for p in idle(self.table.get("*", {}))
                                                  if model != "*"]


# --- baselines -------------------------------------------------------------------------------------


def baseline_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{safe_stem(name)}.json"


def save_baseline(report: Report, directory: Path, name: str) -> Path:
    """Store the whole report as baseline ``name`` (replacing an older one completely)."""
    path = baseline_path(directory, name)
    atomic_write(path, json.dumps(report.to_dict(), indent=1) + "\n")
    return path


def load_baseline(directory: Path, name: str, *, model: str, dataset: str | None) -> Report | None:
    """The baseline, or None when there is none yet (the first run passes and says so)."""
    path = baseline_path(directory, name)
    if not path.exists():
        return None
    base = load_report(path)
    if base.model != model:
        raise HacError(f"baseline {path} was recorded for model {base.model!r}, not {model!r}: compare against a "
                       f"baseline of the same model (--hac-compare=NAME) or save a new one (--hac-save-baseline)")
    if dataset is not None and base.dataset != dataset:
        raise HacError(f"baseline {path} was recorded on data {base.dataset!r}, not {dataset!r}: compare like with "
                       f"like or save a new baseline")
    return base


@dataclass(frozen=True)
class Comparison:
    """One cell against its baseline: delta in points and one-sided p-values for a drop and a gain."""

    case_id: str
    baseline: float
    current: float
    p_drop: float
    p_gain: float
    paired: bool

    @property
    def delta_points(self) -> float:
        return 100 * (self.current - self.baseline)

    def regression(self, margin_points: float) -> bool:
        return self.p_drop < SIGNIFICANCE and -self.delta_points > margin_points

    @property
    def improvement(self) -> bool:
        return self.p_gain < SIGNIFICANCE


def compare(result: Result, base: Report) -> Comparison | None:
    """Compare with the baseline's cell of the same id: McNemar on the same images, else two proportions."""
    old = next((r for r in base.results if r.case_id == result.case_id), None)
    if old is None:
        return None
    if old.ids and result.ids and old.ids == result.ids and old.correct and result.correct:
        return Comparison(result.case_id, old.accuracy, result.accuracy,
                          mcnemar_drop_pvalue(old.correct, result.correct),
                          mcnemar_drop_pvalue(result.correct, old.correct), True)
    k1, k2 = old.correct_count, result.correct_count
    return Comparison(result.case_id, old.accuracy, result.accuracy,
                      two_proportion_drop_pvalue(k1, old.n, k2, result.n),
                      two_proportion_drop_pvalue(k2, result.n, k1, old.n), False)


def version_drift(base: Report, versions: dict[str, str]) -> list[str]:
    old = base.meta.get("versions", {})
    return [f"{k} {old[k]} -> {v}" for k, v in versions.items() if k in old and old[k] != v]
