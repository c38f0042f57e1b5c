"""The outcome of one case, and the gate assertion a test makes on it."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ...attacks import AttackSpec, Threat
from ..cells.cases import DEFAULT_RULE, Case
from ..cells.defense import Defense
from .diagnostics import Diagnostics
from .stats import wilson_interval

#: Gate rules: how a measured accuracy is held against its threshold. One sentence each,
#: printed in every report's header.
GATE_RULES: dict[str, str] = {
    "point": "a cell passes when its measured accuracy reaches the threshold",
    "lenient": "a cell passes when the upper end of its 95% Wilson interval reaches the threshold "
               "(benefit of the doubt, for noisy smoke runs on few images)",
    "confident": "a cell passes only when the lower end of its 95% Wilson interval reaches the threshold "
                 "(for robustness claims)",
}


class GateFailure(AssertionError):
    """A cell's accuracy is below its threshold under the gate rule; carries the numbers for the report."""

    def __init__(self, message: str, *, threshold: float, rule: str) -> None:
        super().__init__(message)
        self.threshold = threshold
        self.rule = rule


def format_threshold(value: float) -> str:
    """A threshold as it was given: 0.999 stays 0.999, 0.6 stays 0.6 (never rounded up to 1)."""
    return f"{value:.6g}"


def gate_message(result: "Result", threshold: float, rule: str) -> str:
    """The one wording of a missed threshold (pytest's message, the report's reason)."""
    return (f"{result.case_id}: accuracy {result.accuracy:.3f} (95% CI {result.ci_low:.3f}-{result.ci_high:.3f}, "
            f"n={result.n}) is below the threshold {format_threshold(threshold)} [gate rule {rule}: "
            f"{GATE_RULES[rule]}]")


@dataclass(frozen=True)
class Result:
    """What one case measured on ``n`` images: accuracy with its 95% Wilson interval, the defense's cost.

    Holds its :class:`~pytest_hac.core.cells.cases.Case` (defense, threat, attack, id, threshold and gate rule,
    each held there once) and the measurements only. Immutable: what a run decides about a result (its
    verdict, its comparison with a baseline) is held beside it, in the report's cell records.
    """

    case: Case
    accuracy: float
    n: int
    ci_low: float
    ci_high: float
    bpp: float | None
    psnr: float | None
    seconds: float
    correct: tuple[bool, ...] = field(default=(), repr=False)
    ids: tuple[str, ...] = field(default=(), repr=False)
    #: Minimum-norm attacks (cw): median L2 norm of the perturbations, in [0, 1] pixel units, counting an
    #: image the pipeline still gets right as infinite (None when fewer than half are fooled).
    median_l2: float | None = None
    #: Measurements the soundness checks read, made while the cell ran.
    diagnostics: Diagnostics = field(default_factory=Diagnostics, repr=False)

    @classmethod
    def from_correct(cls, correct: list[bool] | tuple[bool, ...], case: Case, **measured: Any) -> "Result":
        """The result of ``case`` from its per-image outcomes (and the other measurements, by name)."""
        k, n = sum(correct), len(correct)
        low, high = wilson_interval(k, n)
        ids = tuple(measured.pop("ids", ()))
        return cls(case=case, accuracy=k / n if n else float("nan"), n=n, ci_low=low, ci_high=high,
                   correct=tuple(bool(c) for c in correct), ids=ids, **measured)

    # What the case says, read where a result is at hand (reports, checks and comparisons read these).
    @property
    def case_id(self) -> str:
        return self.case.id

    @property
    def codec(self) -> str:
        return self.case.codec

    @property
    def quality(self) -> int | None:
        return self.case.quality

    @property
    def rounds(self) -> int:
        return self.case.rounds

    @property
    def threat(self) -> Threat:
        return self.case.threat

    @property
    def defense(self) -> Defense:
        return self.case.defense

    @property
    def spec(self) -> AttackSpec | None:
        """The whole attack (None for clean and worst cells)."""
        return self.case.attack if self.case.threat.attacked else None

    @property
    def threshold(self) -> float | None:
        return self.case.threshold

    @property
    def rule(self) -> str:
        return self.case.rule

    @property
    def correct_count(self) -> int:
        return sum(self.correct) if self.correct else round(self.accuracy * self.n)

    @property
    def attack(self) -> str | None:
        return None if self.spec is None else self.spec.name

    @property
    def eps(self) -> float | None:
        return None if self.spec is None else self.spec.eps

    @property
    def min_norm(self) -> bool:
        """A minimum-norm attack's cell (cw): no eps budget."""
        return self.spec is not None and self.spec.min_norm

    def gate(self, threshold: float | None = None, rule: str | None = None) -> bool:
        """Whether the result meets ``threshold`` under ``rule`` (see :data:`GATE_RULES`; both default to the
        case's)."""
        threshold = self.threshold if threshold is None else threshold
        rule = rule or self.rule
        if rule not in GATE_RULES:
            raise ValueError(f"gate rule must be one of {', '.join(GATE_RULES)}; got {rule!r}")
        if threshold is None:
            return True
        value = {"point": self.accuracy, "lenient": self.ci_high, "confident": self.ci_low}[rule]
        return value >= threshold - 1e-12

    def assert_at_least(self, threshold: float | None = None, rule: str | None = None) -> None:
        """Fail (:class:`GateFailure`, an ``AssertionError``) when the accuracy misses ``threshold``.

        ``rule`` defaults to the case's, the run's ``--hac-gate`` (``point``: the measured accuracy
        itself; ``lenient`` and ``confident`` use the 95% interval's upper or lower end).
        """
        __tracebackhide__ = True  # the failure points at the test, not here
        threshold = self.threshold if threshold is None else threshold
        rule = rule or self.rule
        if not self.gate(threshold, rule):
            raise GateFailure(gate_message(self, threshold, rule), threshold=threshold, rule=rule)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``report/schema.py``): one flat record, the case's fields first (the attack as its
        name, eps and every parameter), then the measurements. The gate rule is the report's ``gate_rule``."""
        case = self.case
        data: dict[str, Any] = {"case_id": case.id, "codec": case.codec, "quality": case.quality,
                                "rounds": case.rounds, "threat": str(case.threat), "attack": self.attack,
                                "eps": self.eps}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "case":
                continue
            if f.name == "median_l2":  # the order of schemas 2 to 4
                data["threshold"] = case.threshold
                data["attack_params"] = {} if self.spec is None else self.spec.as_dict()
            if f.name == "diagnostics":
                value = value.to_dict()
            elif f.name in ("correct", "ids"):
                value = list(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], rule: str = DEFAULT_RULE) -> "Result":
        """A result read from the JSON, held to ``rule`` (the report's ``gate_rule``; schema 3 also wrote each
        result's ``rule``, always the report's)."""
        case = Case(data["codec"], data["quality"], data["rounds"], Threat.of(data["threat"]),
                    AttackSpec.from_dict(data.get("attack_params") or {}), data.get("threshold"), data["case_id"],
                    rule=rule)
        known = {f.name for f in fields(cls)} - {"case"}
        values = {k: v for k, v in data.items() if k in known}
        values["correct"] = tuple(values.get("correct", ()))
        values["ids"] = tuple(values.get("ids", ()))
        values["diagnostics"] = Diagnostics.from_dict(data.get("diagnostics"))
        return cls(case=case, **values)


def worst_per_image(results: Sequence[Result]) -> list[bool]:
    """Per image, right only if right in every result (same images, same order): the one per-image worst
    case of cells (robust accuracy of a defense; a worst cell from its parts)."""
    return [all(flags) for flags in zip(*(r.correct for r in results))]
