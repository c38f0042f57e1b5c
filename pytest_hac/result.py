"""The outcome of one case, and the gate assertion a test makes on it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .stats import wilson_interval

GATE_RULES = ("ci", "point")


@dataclass
class Result:
    """Accuracy of one case on ``n`` images, with its 95% Wilson interval and the defense's cost."""

    case_id: str
    codec: str
    quality: int | None
    rounds: int
    threat: str
    attack: str | None
    eps: float | None
    accuracy: float
    n: int
    ci_low: float
    ci_high: float
    bpp: float | None
    psnr: float | None
    seconds: float
    correct: list[bool] = field(default_factory=list, repr=False)
    ids: list[str] = field(default_factory=list, repr=False)
    threshold: float | None = None
    rule: str = "ci"
    passed: bool | None = None
    attack_params: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Filled when compared with a baseline (--hac-compare).
    baseline_accuracy: float | None = None
    p_drop: float | None = None
    regression: bool | None = None

    @classmethod
    def from_correct(cls, correct: list[bool], **fields: Any) -> "Result":
        k, n = sum(correct), len(correct)
        low, high = wilson_interval(k, n)
        return cls(accuracy=k / n if n else float("nan"), n=n, ci_low=low, ci_high=high, correct=correct, **fields)

    @property
    def correct_count(self) -> int:
        return sum(self.correct) if self.correct else round(self.accuracy * self.n)

    def gate(self, threshold: float | None = None, rule: str | None = None) -> bool:
        """Whether the result meets ``threshold`` under ``rule`` ("ci": the interval reaches it)."""
        threshold = self.threshold if threshold is None else threshold
        rule = rule or self.rule
        if threshold is None:
            return True
        if rule not in GATE_RULES:
            raise ValueError(f"gate rule must be one of {GATE_RULES}; got {rule!r}")
        value = self.ci_high if rule == "ci" else self.accuracy
        return value >= threshold - 1e-12

    def assert_at_least(self, threshold: float | None = None, rule: str | None = None) -> None:
        """Fail (AssertionError) when the accuracy is significantly below ``threshold``.

        With rule "ci" (default) only an interval lying wholly below the threshold
        fails, so sampling noise on few images does not flake; "point" compares
        the estimate itself.
        """
        threshold = self.threshold if threshold is None else threshold
        if threshold is not None:
            self.threshold = threshold
        rule = rule or self.rule
        self.rule = rule
        ok = self.gate(threshold, rule)
        if not ok:
            raise AssertionError(
                f"{self.case_id}: accuracy {self.accuracy:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}, "
                f"n={self.n}) is below the threshold {threshold:.3f} [gate rule: {rule}]"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("accuracy", "ci_low", "ci_high", "bpp", "psnr", "seconds"):
            value = data[key]
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
