"""Notes a report carries about its cells: what is weaker or missing, so that nothing is hidden."""
from __future__ import annotations

from ..core.judge.result import Result
from ..registry import ATTACKS, CODECS
from .schema import Report


def plural(n: int, word: str) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def weakened_attacks(results: list[Result]) -> list[str]:
    """Cells whose attack runs fewer steps than the attack's default: visible, never hidden."""
    weak: dict[str, list[str]] = {}
    for r in results:
        if r.spec is None or r.spec.name not in ATTACKS:
            continue
        default = ATTACKS.info(r.spec.name).steps
        if r.spec.steps < default:
            weak.setdefault(r.spec.describe() + f" (default steps {default})", []).append(r.case_id)
    return [f"attack weaker than its defaults: {attack} in {plural(len(cells), 'cell')}"
            for attack, cells in weak.items()]


def baseline_gaps(results: list[Result], baseline: Report | None) -> list[str]:
    """Baseline cells this run did not evaluate: a gate that silently lost cells must say so."""
    if baseline is None or not results:
        return []
    missing = sorted({r.case_id for r in baseline.results} - {r.case_id for r in results})
    if not missing:
        return []
    shown = ", ".join(f"`{m}`" for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                                           else "")
    return [f"{plural(len(missing), 'baseline cell')} not in this run: {shown}"]


def backward_note(r: Result) -> str:
    """How an informed cell's gradient went through a codec without a differentiable stand-in ("" otherwise)."""
    if not r.threat.info.informed or r.codec not in CODECS or CODECS.info(r.codec).stand_in:
        return ""
    return "BPDA: real codec forward, identity backward (no differentiable stand-in)"
