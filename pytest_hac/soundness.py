"""Checks that the evaluation itself is sound, run on every report.

A robustness number is only as good as its attacker. These checks catch the
classic signs of a weak evaluation (gradient masking above all) from the
results alone; ``--hac-strict`` turns a flagged check into a test failure.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .result import Result
from .stats import SIGNIFICANCE_LEVEL, mcnemar_drop_pvalue

LARGE_EPS = 8 / 255 - 1e-9


@dataclass(frozen=True)
class Finding:
    """A flagged check: its name, the cells involved and what it means."""

    check: str
    cells: tuple[str, ...]
    message: str


def _significantly_higher(a: Result, b: Result) -> bool:
    """``a`` beats ``b`` on the same images beyond sampling noise (one-sided McNemar at 5%)."""
    if a.correct and b.correct and len(a.correct) == len(b.correct):
        return mcnemar_drop_pvalue(a.correct, b.correct) < SIGNIFICANCE_LEVEL
    return a.ci_low > b.ci_high


def _defense(r: Result) -> tuple:
    return (r.codec, r.quality, r.rounds)


def check(results: list[Result]) -> list[Finding]:
    """All soundness findings for a set of results (an empty list means every check passed)."""
    findings: list[Finding] = []
    by_defense: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        by_defense[_defense(r)].append(r)
    for rs in by_defense.values():
        clean = next((r for r in rs if r.threat == "clean"), None)
        attacked = [r for r in rs if r.threat != "clean"]
        for r in attacked:
            if clean is not None and r.eps == 0 and r.correct != clean.correct and r.threat != "query":
                findings.append(Finding("eps0-equals-clean", (r.case_id, clean.case_id),
                                        f"{r.case_id}: an attack with eps = 0 changed predictions"))
        # accuracy must not rise with eps (same threat and attack)
        series: dict[tuple, list[Result]] = defaultdict(list)
        for r in attacked:
            series[(r.threat, r.attack)].append(r)
        for group in series.values():
            group.sort(key=lambda r: r.eps or 0)
            for lo, hi in zip(group, group[1:]):
                if (hi.eps or 0) > (lo.eps or 0) and _significantly_higher(hi, lo):
                    findings.append(Finding("monotone-in-eps", (lo.case_id, hi.case_id),
                                            f"{hi.case_id} is more accurate than {lo.case_id} at a smaller eps: the "
                                            f"attack is not converging (more steps or restarts)"))
        # an attacker who sees the defense must not do worse than one who ignores it
        for r in attacked:
            if r.threat not in ("whitebox", "adaptive"):
                continue
            for o in attacked:
                if o.threat == "oblivious" and o.attack == r.attack and o.eps == r.eps and _significantly_higher(r, o):
                    findings.append(Finding("informed-not-weaker", (r.case_id, o.case_id),
                                            f"{r.case_id} ({r.accuracy:.2f}) is above {o.case_id} ({o.accuracy:.2f}): "
                                            f"the defense-aware attack is weaker, a sign of gradient masking"))
        # a gradient-free attack beating the gradient attack is the classic sign of masked gradients
        for q in attacked:
            if q.threat != "query":
                continue
            for g in attacked:
                if g.threat in ("whitebox", "adaptive") and g.eps == q.eps and _significantly_higher(g, q):
                    findings.append(Finding("gradient-free-not-stronger", (q.case_id, g.case_id),
                                            f"gradient-free {q.case_id} ({q.accuracy:.2f}) beats gradient attack "
                                            f"{g.case_id} ({g.accuracy:.2f}): possible gradient masking"))
    for r in results:
        if (r.codec == "identity" and r.threat != "clean" and r.attack in ("pgd", "apgd", "autoattack")
                and (r.eps or 0) >= LARGE_EPS and r.ci_low > 0.1):
            findings.append(Finding("undefended-breaks", (r.case_id,),
                                    f"{r.case_id}: the undefended model keeps {r.accuracy:.2f} accuracy under a "
                                    f"large-eps attack; expected near 0 (is it in eval mode, returning logits?)"))
    return findings


def markdown_section(results: list[Result]) -> str:
    """The report's "Soundness checks" section."""
    findings = check(results)
    lines = ["## Soundness checks", ""]
    names = ["eps0-equals-clean", "monotone-in-eps", "informed-not-weaker", "gradient-free-not-stronger",
             "undefended-breaks"]
    flagged = {f.check for f in findings}
    for name in names:
        lines.append(f"- `{name}`: {'**FLAGGED**' if name in flagged else 'ok'}")
    for f in findings:
        lines.append(f"  - {f.message}")
    return "\n".join(lines)
