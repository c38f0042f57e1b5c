"""Thresholds files and the comparison with a baseline: what makes a cell pass or fail beyond its own test."""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import HacError
from .result import Result
from .stats import SIGNIFICANCE_LEVEL as SIGNIFICANCE
from .stats import mcnemar_drop_pvalue

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

    def tables_for(self, model: str) -> list[str]:
        """The tables that apply to ``model``: ``"*"`` and the model's own, in that order."""
        return [t for t in ("*", model) if t in self.table]

    def missing_table(self, model: str) -> str | None:
        """A warning when the file has tables for models but none for ``model`` (a typo gates nothing)."""
        others = [t for t in self.table if t != "*"]
        if not others or model in self.table:
            return None
        rest = 'with the ["*"] table only' if "*" in self.table else "ungated by this file"
        tables = ", ".join(f"[{t}]" for t in others)
        return (f"{self.path}: no table for model {model!r}; the file has tables {tables} (a typo?). Name a table "
                f"[{_toml_key(model)}] to gate this model; its cells run {rest}")

    def unused(self, model: str, case_ids: list[str]) -> list[str]:
        """Patterns for ``model`` (and of the ``["*"]`` table, shown as ``[*] pattern``) that match no cell:
        usually a typo that would silently gate nothing."""
        def idle(patterns: dict[str, float]) -> list[str]:
            return [p for p in patterns if not any(fnmatch.fnmatchcase(c, p) for c in case_ids)]

        return idle(self.table.get(model, {})) + [f"[*] {p}" for p in idle(self.table.get("*", {}))
                                                  if model != "*"]


def _toml_key(name: str) -> str:
    return name if all(c.isalnum() or c in "-_" for c in name) else f'"{name}"'


# --- comparing with a baseline ---------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One cell against the baseline's cell of the same id and attack, on the images both runs share.

    ``baseline`` and ``current`` are accuracies on the ``compared`` shared images (of the
    baseline's ``of``); the p-values are one-sided exact McNemar tests on those pairs.
    A cell that cannot be compared says why in ``why`` (then the numbers are None).
    """

    baseline: float | None = None
    current: float | None = None
    compared: int = 0
    of: int = 0
    p_drop: float | None = None
    p_gain: float | None = None
    regression: bool = False
    why: str | None = None

    @property
    def comparable(self) -> bool:
        return self.why is None

    @property
    def delta_points(self) -> float | None:
        return None if self.baseline is None or self.current is None else 100 * (self.current - self.baseline)


def describe_attack(params: dict) -> str:
    """An attack with every parameter, as reports and messages show it: ``pgd Linf eps=4/255 steps=10 ...``."""
    if not params:
        return "no attack"
    parts = [str(params.get("name", "?")), str(params.get("norm", ""))]
    eps = params.get("eps")
    if params.get("min_norm"):
        parts.append("minimum-norm")
    elif eps is not None:
        k = eps * 255
        parts.append(f"eps={k:g}/255" if params.get("norm") == "Linf" and abs(k - round(k)) < 1e-6 else f"eps={eps:g}")
    for key in ("steps", "alpha", "restarts", "eot", "queries"):
        value = params.get(key)
        if value is not None:
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(p for p in parts if p)


def compare(result: Result, baseline: list[Result], margin_points: float | None = None) -> Comparison | None:
    """Compare with the baseline's cell of the same id, on the images both runs share.

    None when the baseline has no such cell. A cell whose attack differs from the
    baseline's (any parameter) is not comparable: a weakened attack must not show up
    as an improvement. Δ and the one-sided exact McNemar p-values use only the shared
    images, so a run on fewer (or other) images is compared like with like.
    """
    old = next((r for r in baseline if r.case_id == result.case_id), None)
    if old is None:
        return None
    if old.attack_params != result.attack_params:
        return Comparison(of=old.n, why=f"the attack differs: baseline {describe_attack(old.attack_params)}, "
                                        f"this run {describe_attack(result.attack_params)}")
    mine = dict(zip(result.ids, result.correct))
    shared = [(was, mine[i]) for i, was in zip(old.ids, old.correct) if i in mine]
    if not shared:
        return Comparison(of=old.n, why="no image of this run is in the baseline (other data or subset)")
    before = [a for a, _ in shared]
    after = [b for _, b in shared]
    base_acc, cur_acc = sum(before) / len(shared), sum(after) / len(shared)
    p_drop, p_gain = mcnemar_drop_pvalue(before, after), mcnemar_drop_pvalue(after, before)
    regression = (margin_points is not None and p_drop < SIGNIFICANCE
                  and 100 * (base_acc - cur_acc) > margin_points)
    return Comparison(baseline=base_acc, current=cur_acc, compared=len(shared), of=old.n, p_drop=p_drop,
                      p_gain=p_gain, regression=regression)


def version_drift(recorded: dict[str, str], versions: dict[str, str]) -> list[str]:
    """Packages whose version differs from the one ``recorded`` with a baseline: ``torch 2.1 -> 2.2``."""
    old = recorded
    return [f"{k} {old[k]} -> {v}" for k, v in versions.items() if k in old and old[k] != v]
