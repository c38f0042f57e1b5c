"""The report of a run: its cells (result, verdict, reasons, baseline comparison), how it was run, and what
is derived from its cells once: the soundness findings and each check's state (when it is built; a loaded
report keeps those it was written with) and each defense's worst case (on first use).

The JSON form (:meth:`Report.to_dict`) is also the baseline format; the view every rendering shares is
:mod:`pytest_hac.report.view`. Nothing that renders a report derives these again.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ..core.cells.cases import Case
from ..core.judge.comparison import Comparison
from ..core.judge.result import Result
from ..core.judge.soundness import CHECK_NAMES, Finding, check, implicating, status, worst_case
from ..core.judge.verdict import Reason, ReasonKind, Status, Verdict
from ..errors import HacError
from ..io.files import safe_stem

SCHEMA = 4
#: Older schemas this version reads (2: a cell's verdict was ``passed``: true, false or null; 3: each result also
#: wrote its gate ``rule``, each cell its ``applied_threshold``, copies of ``gate_rule`` and ``threshold``).
READABLE_SCHEMAS = (2, 3, SCHEMA)


def _reasons(items: list[dict[str, Any]]) -> tuple[Reason, ...]:
    return tuple(Reason(ReasonKind(r["kind"]), r["message"]) for r in items)


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """A soundness finding's JSON form (``meta.soundness.findings``): check, cells, message, implicated."""
    return {"check": finding.check, "cells": list(finding.cells), "message": finding.message,
            "implicated": list(finding.implicated)}


def finding_from_dict(data: dict[str, Any]) -> Finding:
    return Finding(check=data["check"], cells=tuple(data["cells"]), message=data["message"],
                   implicated=tuple(data.get("implicated", ())))


@dataclass(frozen=True)
class Cell:
    """One test's record of one case: its result (which holds the case: threshold and gate rule included), the
    verdict decided in its test, its comparison with the baseline and the soundness findings that implicate it."""

    test: str
    result: Result
    verdict: Verdict = Verdict(Status.MEASURED)
    comparison: Comparison | None = None
    #: The soundness findings its verdict read that implicate it (or, for a worst cell, one of its parts). Not
    #: written per cell: a loaded report gives each cell those of its findings (``meta.soundness``) that do.
    findings: tuple[Finding, ...] = ()

    @property
    def case(self) -> Case:
        return self.result.case

    @property
    def case_id(self) -> str:
        return self.result.case_id

    @property
    def threshold(self) -> float | None:
        """The threshold the cell was held to (the thresholds file's, else the marker's)."""
        return self.result.case.threshold

    @property
    def status(self) -> Status:
        return self.verdict.status

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return self.verdict.reasons

    @property
    def failed(self) -> bool:
        return self.verdict.failed

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: the result's (case and measurements, one ``threshold``), then the test and its verdict."""
        return {**self.result.to_dict(), "test": self.test, "verdict": self.status.value,
                "reasons": [{"kind": r.kind.value, "message": r.message} for r in self.reasons],
                "warnings": [{"kind": r.kind.value, "message": r.message} for r in self.verdict.warnings],
                "baseline": None if self.comparison is None else asdict(self.comparison)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, rule: str, findings: Sequence[Finding] = ()) -> "Cell":
        """A cell read back, held to ``rule`` (the report's ``gate_rule``), with those of ``findings`` that
        implicate it. Schema 3 also wrote ``applied_threshold``, always its ``threshold``."""
        base = data.get("baseline")
        status = data.get("verdict")
        if status is None:  # schema 2
            status = {True: "passed", False: "failed"}.get(data.get("passed"), "measured")
        verdict = Verdict(Status(status), _reasons(data.get("reasons", [])), _reasons(data.get("warnings", [])))
        result = Result.from_dict(data, rule)
        return cls(test=data.get("test", data["case_id"]), result=result, verdict=verdict,
                   comparison=None if base is None else Comparison(**base), findings=implicated(findings, result))


def implicated(findings: Sequence[Finding], result: Result) -> tuple[Finding, ...]:
    """Those of ``findings`` that implicate ``result``'s cell or, for a worst cell, one of its parts."""
    return tuple(f for f, _ in implicating(findings, result.case_id, result.diagnostics.cells or ()))


@dataclass(frozen=True)
class Scope:
    """Which cells a run was asked for: all ``total`` collected cells, ``selected`` of them (``-k``,
    ``--lf``, node ids, ``-m``, a shard), ``cells_hash`` naming the full cell list (test ids and each
    cell's full identity: its attack's every parameter) and ``thresholds_hash`` the threshold each cell
    is held to, so shards of one run can be recognised."""

    selected: int = 0
    total: int = 0
    shard: tuple[int, int] | None = None
    cells_hash: str = ""
    thresholds_hash: str = ""

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
    #: Results the soundness checks compared cells with that are not cells of this run (an informed
    #: cell's oblivious twin when the marker has none, cells outside a selection or shard).
    references: list[Result] = field(default_factory=list)
    #: Why the run ended without evaluating (a usage, collection or internal error), in one line.
    error: str | None = None
    #: The soundness findings over :attr:`checked` (None: found when the report is built; a loaded report keeps
    #: the findings it was written with).
    findings: tuple[Finding, ...] | None = None
    #: Each soundness check's state (``ok``, ``flagged``, ``not run: <why>``), by check name (None: as findings).
    checks: dict[str, str] | None = None

    def __post_init__(self) -> None:
        checked = self.checked
        if self.findings is None:
            self.findings = tuple(check(checked))
        if self.checks is None or not set(CHECK_NAMES) <= set(self.checks):  # a file older than a check: the rest
            self.checks = {**status(checked, list(self.findings)), **(self.checks or {})}

    @property
    def results(self) -> list[Result]:
        """Every distinct case's result (two tests on one cell measure the same thing)."""
        seen: dict[str, Result] = {}
        for cell in self.cells:
            seen.setdefault(cell.case_id, cell.result)
        return list(seen.values())

    @cached_property
    def worst(self) -> tuple[Result, ...]:
        """Per defense, its worst case per image over every attack tried
        (:func:`~pytest_hac.core.judge.soundness.worst_case` of the cells' results): derived once, the first time
        a rendering asks (loaded reports too: their cells hold the images), so loading a history or a baseline pays
        nothing for it."""
        return tuple(worst_case(self.results))

    @property
    def stem(self) -> str:
        return safe_stem(self.model) + self.scope.suffix

    @property
    def whole(self) -> bool:
        """Complete and neither a shard nor a selection: every cell of the run is in it."""
        return self.complete and not self.scope.partial

    @property
    def counts(self) -> dict[str, int]:
        """Cells by verdict; a run that ended in an error counts none as passed."""
        count = {s: sum(1 for c in self.cells if c.status is s) for s in Status}
        passed = 0 if self.error else count[Status.PASSED]
        return {"cells": len(self.cells), "passed": passed, "failed": count[Status.FAILED],
                "measured": count[Status.MEASURED]}

    @property
    def checked(self) -> list[Result]:
        """What the soundness checks look at: the cells' results and the references they were compared with."""
        return self.results + [r for r in self.references if r.case_id not in {c.case_id for c in self.cells}]

    @property
    def status(self) -> str:
        """``ERROR: ...``, ``complete``, ``complete (selected N of M cells)``, ``shard I of N`` or ``INCOMPLETE``."""
        if self.error:
            return f"ERROR: {self.error}"
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
            "ids": self.ids, "skipped_images": self.skipped_images,
            "meta": {**self.meta, "soundness": {"status": self.checks,
                                                "findings": [finding_to_dict(f) for f in self.findings]}},
            "notes": self.notes,
            "results": [c.to_dict() for c in sorted(self.cells, key=lambda c: (c.case_id, c.test))],
            "references": [r.to_dict() for r in sorted(self.references, key=lambda r: r.case_id)],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        if not isinstance(data, dict):
            raise HacError(f"a report is a JSON object with 'schema', 'model' and 'results'; got a "
                           f"{type(data).__name__}")
        if data.get("schema") not in READABLE_SCHEMAS:
            raise HacError(f"report schema {data.get('schema')!r} is not supported (this pytest-hac reads schema "
                           f"{SCHEMA}); regenerate it with this version")
        try:
            fields_ = {k: data[k] for k in ("model", "dataset", "n", "device", "seed", "gate_rule")}
            scope = dict(data.get("scope") or {})
            if scope.get("shard") is not None:
                scope["shard"] = tuple(scope["shard"])
            meta = dict(data.get("meta") or {})
            soundness = meta.pop("soundness", None) or {}
            written = soundness.get("findings")
            findings = None if written is None else tuple(finding_from_dict(f) for f in written)
            rule = fields_["gate_rule"]
            cells = [Cell.from_dict(r, rule=rule) for r in data["results"]]
            rep = cls(**fields_, ids=data.get("ids", []), cells=cells,
                      complete=data.get("complete", False), scope=Scope(**scope),
                      skipped_images=data.get("skipped_images", []), meta=meta, findings=findings,
                      checks=soundness.get("status"), notes=data.get("notes", []), error=data.get("error"),
                      references=[Result.from_dict(r, rule) for r in data.get("references", [])])
            # each cell's findings are the report's that implicate it (written once, in meta.soundness)
            rep.cells = [replace(c, findings=implicated(rep.findings, c.result)) for c in rep.cells]
            return rep
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise HacError(f"report is damaged or hand-edited (schema {data.get('schema')} but {type(exc).__name__}: "
                           f"{exc}); "
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
