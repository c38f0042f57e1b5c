"""What the plugin knows of a test item that is a cell, and the message that carries a decided cell
from an xdist worker to the controller (one typed object; JSON only on the wire)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from ..core.judge.result import Result
from ..report.schema import Cell, Scope, finding_from_dict, finding_to_dict


def test_id(nodeid: str) -> str:
    """A test's node id without the ``@group`` suffix ``--dist loadgroup`` appends to it (after a cell's
    parameters: an ``@`` inside them is the test's own)."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


def is_cell(item: pytest.Item) -> bool:
    return "hac_case" in getattr(item, "fixturenames", ())


def take_properties(report: pytest.TestReport, names: set[str]) -> list[tuple[str, Any]]:
    """Take the ``names`` properties off ``report`` and return them, so no later reporter (JUnit XML, ...)
    carries them. In place: in one process the report's list is its item's, which later reports copy."""
    taken = [(name, value) for name, value in report.user_properties if name in names]
    if taken:
        report.user_properties[:] = [(name, value) for name, value in report.user_properties if name not in names]
    return taken


@dataclass(frozen=True)
class CellMessage:
    """A decided cell and what the controller's report needs from the process that evaluated it."""

    cell: Cell
    references: list[Result] = field(default_factory=list)
    scope: Scope = field(default_factory=Scope)
    torch_threads: int | None = None
    attack_images: int = 0
    threshold_lines: list[str] = field(default_factory=list)
    #: What the report says of the data (only from an xdist worker: the controller never loads it).
    data_info: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: the cell's report record and what the record leaves to the report (its gate rule, the
        findings that decided it)."""
        return {"cell": self.cell.to_dict(), "rule": self.cell.case.rule,
                "findings": [finding_to_dict(f) for f in self.cell.findings],
                "references": [r.to_dict() for r in self.references],
                "scope": asdict(self.scope), "torch_threads": self.torch_threads,
                "attack_images": self.attack_images, "threshold_lines": self.threshold_lines,
                "data_info": self.data_info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellMessage:
        scope = dict(data["scope"])
        scope["shard"] = tuple(scope["shard"]) if scope.get("shard") else None
        rule = data["rule"]
        cell = Cell.from_dict(data["cell"], rule=rule, findings=[finding_from_dict(f) for f in data["findings"]])
        return cls(cell=cell, references=[Result.from_dict(r, rule) for r in data["references"]],
                   scope=Scope(**scope), torch_threads=data.get("torch_threads"),
                   attack_images=int(data.get("attack_images", 0)), threshold_lines=list(data["threshold_lines"]),
                   data_info=data.get("data_info"))
