"""A cell's verdict, decided once, by one pure function.

:func:`decide` takes what a cell measured (its result, whose case holds its gate: the threshold, the
marker's or the thresholds file's, and the rule), the test body's own failure (if any), its comparison with a
baseline and the soundness findings over the cell and the cells it depends on, and returns a :class:`Verdict`: passed,
failed or measured (no gate), with typed reasons. The plugin calls it inside the cell's own
test call, so pytest, JUnit, the report, shards and merges all carry the same verdict; nothing
else decides or re-decides.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .comparison import Comparison
from .result import Result, gate_message
from .soundness import Finding, implicating


class ReasonKind(str, Enum):
    """Why a cell failed (or, for ``SOUNDNESS`` under ``--hac-soundness=warn``, what it was warned of)."""

    THRESHOLD = "threshold"    # below the cell's threshold (marker or file) under the gate rule
    ASSERTION = "assertion"    # the test body's own, stricter assertion failed
    ERROR = "error"            # the test body raised
    REGRESSION = "regression"  # a significant drop against the baseline, beyond --hac-fail-drop
    BASELINE = "baseline"      # not comparable with the baseline under --hac-fail-drop
    SOUNDNESS = "soundness"    # a soundness finding implicates the cell


class Status(str, Enum):
    """``measured``: no gate applied to the cell (no threshold, no baseline rule): reported, not judged."""

    PASSED = "passed"
    FAILED = "failed"
    MEASURED = "measured"


@dataclass(frozen=True)
class Reason:
    """One reason a cell failed (or one warning), with its numbers."""

    kind: ReasonKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


@dataclass(frozen=True)
class Verdict:
    status: Status
    reasons: tuple[Reason, ...] = ()
    #: Soundness findings that would fail the cell, kept as warnings under ``--hac-soundness=warn``.
    warnings: tuple[Reason, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED


def decide(result: Result, *, test_failure: Reason | None = None, comparison: Comparison | None = None,
           compare_fail: float | None = None, baseline: str | None = None, findings: Sequence[Finding] = (),
           soundness: str = "fail") -> Verdict:
    """The verdict of one cell. Pure: the same inputs always give the same verdict.

    Args:
        result: what the cell measured; its case's ``threshold`` (the thresholds file's, else the marker's; None:
            no threshold) and ``rule`` (:data:`~.result.GATE_RULES`) are the cell's gate.
        test_failure: the test body's own failure (a stricter assertion, or an error), if it had one.
        comparison: the cell against the baseline (None: no baseline cell).
        compare_fail: ``--hac-fail-drop`` (None: comparisons inform, never fail).
        baseline: the baseline's name, for messages.
        findings: soundness findings over this cell and the cells it depends on (a worst cell's parts' findings
            implicate it too).
        soundness: ``fail``/``thorough`` (findings implicating the cell fail it) or ``warn``.
    """
    reasons: list[Reason] = []
    threshold = result.case.threshold
    if threshold is not None and not result.gate():
        reasons.append(Reason(ReasonKind.THRESHOLD, gate_message(result, threshold, result.case.rule)))
    if test_failure is not None and all(r.message != test_failure.message for r in reasons):
        reasons.append(test_failure)
    gated = threshold is not None
    if comparison is not None and compare_fail is not None:
        gated = True
        if comparison.regression:
            reasons.append(Reason(ReasonKind.REGRESSION, (
                f"dropped {-comparison.delta_points:.1f} points against baseline {baseline!r} "
                f"({comparison.baseline:.3f} -> {comparison.current:.3f} on {comparison.compared} shared images, "
                f"one-sided paired p={comparison.p_drop:.3g}), more than the allowed {compare_fail:g} points")))
        elif not comparison.comparable:
            reasons.append(Reason(ReasonKind.BASELINE, f"not comparable with baseline {baseline!r}: {comparison.why}"))
    flagged = tuple(Reason(ReasonKind.SOUNDNESS, f"{f.check}: {f.message}" if cell == result.case_id else
                           f"its part {cell} is flagged: {f.check}: {f.message}")
                    for f, cell in implicating(findings, result.case_id, result.diagnostics.cells or ()))
    warnings: tuple[Reason, ...] = ()
    if soundness == "warn":
        warnings = flagged
    else:
        reasons += flagged
    if reasons:
        return Verdict(Status.FAILED, tuple(reasons), warnings)
    return Verdict(Status.PASSED if gated else Status.MEASURED, (), warnings)
