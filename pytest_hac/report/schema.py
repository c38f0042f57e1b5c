"""The report of a run: its cells (result, verdict, reasons, baseline comparison) and how it was run.

The JSON form (:meth:`Report.to_dict`) is also the baseline format; rendering
lives in :mod:`pytest_hac.report.markdown` and :mod:`pytest_hac.report.plot`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.gates import Comparison
from ..core.result import Result
from ..errors import HacError
from ..io.files import safe_stem

SCHEMA = 2
#: Why a cell failed: its threshold, a regression against the baseline, a baseline it cannot be
#: compared with, a soundness finding, or an error in the test itself.
REASON_KINDS = ("threshold", "regression", "baseline", "soundness", "error")


@dataclass(frozen=True)
class Reason:
    """One reason a cell failed, with its numbers."""

    kind: str
    message: str


@dataclass(frozen=True)
class Cell:
    """One test's evaluation of one case: what was measured and what the run decided about it."""

    test: str
    result: Result
    passed: bool | None = None
    reasons: tuple[Reason, ...] = ()
    comparison: Comparison | None = None
    #: The threshold the cell was held to: the one its assertion used, else the cell's own.
    threshold: float | None = None

    @property
    def case_id(self) -> str:
        return self.result.case_id

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "test": self.test, "passed": self.passed, "applied_threshold": self.threshold,
                "reasons": [asdict(r) for r in self.reasons],
                "baseline": None if self.comparison is None else asdict(self.comparison)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        base = data.get("baseline")
        return cls(test=data.get("test", data["case_id"]), result=Result.from_dict(data), passed=data.get("passed"),
                   reasons=tuple(Reason(**r) for r in data.get("reasons", [])),
                   comparison=None if base is None else Comparison(**base), threshold=data.get("applied_threshold"))


@dataclass(frozen=True)
class Scope:
    """Which cells a run was asked for: all ``total`` collected cells, ``selected`` of them (``-k``,
    ``--lf``, node ids, ``-m``, a shard), and ``cells_hash`` naming the full cell list, so shards of
    one run can be recognised."""

    selected: int = 0
    total: int = 0
    shard: tuple[int, int] | None = None
    cells_hash: str = ""

    @property
    def partial(self) -> bool:
        return self.shard is not None or self.selected < self.total

    @property
    def suffix(self) -> str:
        """The file name suffix of a partial run: shards and selections never overwrite a full report."""
        if self.shard is not None:
            return f".shard-{self.shard[0]}-of-{self.shard[1]}"
        return ".selection" if self.selected < self.total else ""


@dataclass
class Report:
    """All cells of a session plus what is needed to reproduce and compare them."""

    model: str
    dataset: str
    n: int
    device: str
    seed: int
    gate_rule: str
    ids: list[str] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    complete: bool = False
    scope: Scope = field(default_factory=Scope)
    skipped_images: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def results(self) -> list[Result]:
        """Every distinct case's result (two tests on one cell measure the same thing)."""
        seen: dict[str, Result] = {}
        for cell in self.cells:
            seen.setdefault(cell.case_id, cell.result)
        return list(seen.values())

    @property
    def stem(self) -> str:
        return safe_stem(self.model) + self.scope.suffix

    @property
    def counts(self) -> dict[str, int]:
        passed = sum(1 for c in self.cells if c.passed is True)
        failed = sum(1 for c in self.cells if c.passed is False)
        return {"cells": len(self.cells), "passed": passed, "failed": failed}

    @property
    def status(self) -> str:
        """``complete``, ``complete (selected N of M cells)``, ``shard I of N`` or ``INCOMPLETE``."""
        if not self.complete:
            return "INCOMPLETE"
        if self.scope.shard is not None:
            return f"complete: shard {self.scope.shard[0]} of {self.scope.shard[1]} ({self.scope.selected} of " \
                   f"{self.scope.total} cells)"
        if self.scope.selected < self.scope.total:
            return f"complete (selected {self.scope.selected} of {self.scope.total} cells)"
        return "complete"

    def to_dict(self) -> dict[str, Any]:
        scope = asdict(self.scope)
        return {
            "schema": SCHEMA, "model": self.model, "dataset": self.dataset, "n": self.n, "device": self.device,
            "seed": self.seed, "gate_rule": self.gate_rule, "complete": self.complete, "scope": scope,
            "ids": self.ids, "skipped_images": self.skipped_images, "meta": self.meta, "notes": self.notes,
            "results": [c.to_dict() for c in sorted(self.cells, key=lambda c: (c.case_id, c.test))],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        if not isinstance(data, dict):
            raise HacError(f"a report is a JSON object with 'schema', 'model' and 'results'; got a "
                           f"{type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise HacError(f"report schema {data.get('schema')!r} is not supported (this pytest-hac reads schema "
                           f"{SCHEMA}); regenerate it with this version")
        try:
            fields_ = {k: data[k] for k in ("model", "dataset", "n", "device", "seed", "gate_rule")}
            scope = dict(data.get("scope") or {})
            if scope.get("shard") is not None:
                scope["shard"] = tuple(scope["shard"])
            return cls(**fields_, ids=data.get("ids", []), cells=[Cell.from_dict(r) for r in data["results"]],
                       complete=data.get("complete", False), scope=Scope(**scope),
                       skipped_images=data.get("skipped_images", []), meta=data.get("meta", {}),
                       notes=data.get("notes", []))
        except (KeyError, TypeError, AttributeError) as exc:
            raise HacError(f"report is damaged or hand-edited (schema {SCHEMA} but {type(exc).__name__}: {exc}); "
                           f"regenerate it") from None


def load_report(path: Path) -> Report:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HacError(f"report {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HacError(f"report {path} is not valid JSON ({exc}); delete or regenerate it") from exc
    except OSError as exc:
        raise HacError(f"cannot read report {path}: {exc}") from None
    try:
        return Report.from_dict(data)
    except HacError as exc:
        raise HacError(f"{path}: {exc}") from None
