"""Checks that the evaluation itself is sound, and the per-image worst case of each defense.

A robustness number is only as good as its attacker. These checks catch the classic
signs of a weak evaluation (gradient masking above all) from the results and from
measurements the engine makes while a cell runs (``Result.diagnostics``). By default
a finding fails the cells it implicates; ``--hac-soundness=warn`` keeps it a report line.

Each check compares like with like: cells of one defense, under one attack with all its
parameters (only eps may differ where eps is the point). Minimum-norm attacks (``cw``)
have no eps budget and stay out of every eps series.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .cases import WORST, Case
from .defended import masking_hint
from .result import Result
from .stats import SIGNIFICANCE_LEVEL, mcnemar_drop_pvalue, wilson_interval

#: Large enough that an undefended model must break under a working attack.
LARGE_EPS = 8 / 255 - 1e-9
#: Accuracy an attack must push below (lower end of the 95% interval) where it must break the model.
NEAR_ZERO = 0.1
#: Share of images that may survive the 64/255 attack through the defense. A sound differentiable path
#: drives accuracy to about 0 at that budget (Carlini et al., 2019), so more than a few percent surviving
#: is masking: on the probe's 32 images, 2 or more (1 is tolerated: a last-step rounding can save one).
LARGE_EPS_SURVIVORS = 0.05
#: Threats whose attacker differentiates through the defense.
INFORMED = ("whitebox", "adaptive")
#: Share of images whose input gradient may be zero or not finite before a gradient attack is suspect.
ZERO_GRADIENT_SHARE = 0.01
#: The reference Square attack uses 5,000 queries; below this a query attack is too weak to say much.
MIN_QUERIES = 1000


@dataclass(frozen=True)
class Check:
    """One soundness check: its name, what it means, and what it needs to run."""

    name: str
    meaning: str
    needs: str


CHECKS: tuple[Check, ...] = (
    Check("eps0-equals-clean", "an attack with eps 0 changes no prediction", "no eps-0 cell beside a clean cell"),
    Check("monotone-in-eps", "accuracy does not rise with eps (same defense, threat and attack)",
          "no attack at two eps values on one defense"),
    Check("informed-not-weaker", "white-box and adaptive attacks are not weaker than the oblivious one",
          "no white-box or adaptive cell beside an oblivious cell with the same attack"),
    Check("gradient-free-not-stronger", "a gradient-free attack does not beat the gradient attacks",
          "no query cell beside a white-box or adaptive cell at the same eps"),
    Check("undefended-breaks", "the undefended model breaks under a large-eps attack",
          "no gradient attack in the run"),
    Check("large-eps-through-defense", "a white-box or adaptive attack at eps 64/255 breaks the defended model",
          "no white-box or adaptive cell with an L-inf gradient attack"),
    Check("gradient-nonzero", "input gradients are non-zero and finite on at least 99% of images",
          "no gradient attack in the run"),
    Check("query-budget", f"query attacks use at least {MIN_QUERIES} queries (the reference uses 5,000)",
          "no query cell"),
    Check("steps-convergence", "twice the attack steps do not lower accuracy significantly",
          "not asked for (marker soundness='thorough' or --hac-soundness=thorough)"),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)


@dataclass(frozen=True)
class Finding:
    """A flagged check: the cells involved, the ones it implicates (they fail), and what it means."""

    check: str
    cells: tuple[str, ...]
    message: str
    implicated: tuple[str, ...] = ()

    def implicates(self, case_id: str) -> bool:
        return case_id in (self.implicated or self.cells)


def _significantly_higher(a: Result, b: Result) -> bool:
    """``a`` beats ``b`` on the same images beyond sampling noise (one-sided McNemar at 5%)."""
    if a.correct and b.correct and len(a.correct) == len(b.correct):
        return mcnemar_drop_pvalue(a.correct, b.correct) < SIGNIFICANCE_LEVEL
    return a.ci_low > b.ci_high


def is_min_norm(r: Result) -> bool:
    return bool(r.attack_params.get("min_norm"))


def _attack_key(r: Result, *, with_eps: bool = True) -> tuple:
    """The full attack of a cell (every parameter), optionally without eps."""
    params = {k: v for k, v in sorted(r.attack_params.items()) if with_eps or k != "eps"}
    return (r.attack, tuple((k, repr(v)) for k, v in params.items()))


def _near_zero_missed(correct: int, n: int) -> bool:
    return n > 0 and wilson_interval(correct, n)[0] > NEAR_ZERO


def _checked(results: list[Result]) -> list[Result]:
    return [r for r in results if r.threat != "worst"]


def check(results: list[Result]) -> list[Finding]:
    """All soundness findings for a set of results (an empty list means no check flagged anything)."""
    findings: list[Finding] = []
    results = _checked(results)
    by_defense: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        by_defense[r.defense].append(r)
    for rs in by_defense.values():
        clean = next((r for r in rs if r.threat == "clean"), None)
        bounded = [r for r in rs if r.threat != "clean" and not is_min_norm(r)]
        for r in bounded:
            if clean is not None and r.eps == 0 and r.correct != clean.correct and r.threat != "query":
                findings.append(Finding("eps0-equals-clean", (r.case_id, clean.case_id),
                                        f"{r.case_id}: an attack with eps = 0 changed predictions", (r.case_id,)))
        series: dict[tuple, list[Result]] = defaultdict(list)
        for r in bounded:
            series[(r.threat, _attack_key(r, with_eps=False))].append(r)
        for group in series.values():
            group.sort(key=lambda r: r.eps or 0)
            for lo, hi in zip(group, group[1:]):
                if (hi.eps or 0) > (lo.eps or 0) and _significantly_higher(hi, lo):
                    findings.append(Finding("monotone-in-eps", (lo.case_id, hi.case_id),
                                            f"{hi.case_id} is more accurate than {lo.case_id} at a smaller eps: the "
                                            f"attack is not converging (more steps or restarts)", (hi.case_id,)))
        for r in bounded:
            if r.threat not in INFORMED:
                continue
            for o in bounded:
                if o.threat == "oblivious" and _attack_key(o) == _attack_key(r) and _significantly_higher(r, o):
                    findings.append(Finding("informed-not-weaker", (r.case_id, o.case_id),
                                            f"{r.case_id} ({r.accuracy:.2f}) is above {o.case_id} ({o.accuracy:.2f}): "
                                            f"the defense-aware attack is weaker, a sign of gradient masking; "
                                            f"{masking_hint(r.threat)}",
                                            (r.case_id,)))
        for q in bounded:
            if q.threat != "query":
                continue
            for g in bounded:
                if (g.threat in INFORMED and g.eps == q.eps
                        and g.attack_params.get("norm") == q.attack_params.get("norm") and _significantly_higher(g, q)):
                    findings.append(Finding("gradient-free-not-stronger", (q.case_id, g.case_id),
                                            f"gradient-free {q.case_id} ({q.accuracy:.2f}) beats gradient attack "
                                            f"{g.case_id} ({g.accuracy:.2f}): possible gradient masking; "
                                            f"{masking_hint(g.threat)}",
                                            (g.case_id,)))
    findings += _undefended_breaks(results)
    for r in results:
        findings += _own_measurements(r)
    return findings


def _undefended_breaks(results: list[Result]) -> list[Finding]:
    findings = []
    for r in results:
        if (r.codec == "identity" and r.threat != "clean" and not is_min_norm(r) and r.attack in ("pgd", "apgd",
                                                                                                   "autoattack")
                and (r.eps or 0) >= LARGE_EPS and r.ci_low > NEAR_ZERO):
            findings.append(Finding("undefended-breaks", (r.case_id,),
                                    f"{r.case_id}: the undefended model keeps {r.accuracy:.2f} accuracy under a "
                                    f"large-eps attack; expected near 0 (is it in eval mode, returning logits?)"))
    # The engine's probe: the cell's own attack at a large eps on the bare model (one per attack).
    probes: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        if "undefended_large_eps" in r.diagnostics:
            probes[_attack_key(r, with_eps=False)].append(r)
    for group in probes.values():
        probe = group[0].diagnostics["undefended_large_eps"]
        if _near_zero_missed(probe["correct"], probe["n"]):
            cells = tuple(sorted(r.case_id for r in group))
            findings.append(Finding(
                "undefended-breaks", cells,
                f"{group[0].attack} at eps {probe['eps']:.4g} leaves the undefended model {probe['correct']}/"
                f"{probe['n']} correct; expected near 0: the attack or the model is broken (eval mode? logits?), "
                f"so every cell it attacked is suspect"))
    return findings


def _own_measurements(r: Result) -> list[Finding]:
    """Checks on what the engine measured while this one cell ran."""
    out = []
    d = r.diagnostics
    if "large_eps" in d and d["large_eps"]["correct"] > LARGE_EPS_SURVIVORS * d["large_eps"]["n"]:
        p = d["large_eps"]
        eps = f"{p['eps'] * 255:.0f}/255" if r.attack_params.get("norm", "Linf") == "Linf" else f"{p['eps']:.3g}"
        out.append(Finding("large-eps-through-defense", (r.case_id,),
                           f"{r.case_id}: the same attack at eps {eps} leaves {p['correct']}/"
                           f"{p['n']} images correct (more than {LARGE_EPS_SURVIVORS:.0%}); expected near 0: the "
                           f"gradient through the defense is broken (gradient masking); {masking_hint(r.threat)}"))
    if "zero_gradient" in d:
        z = d["zero_gradient"]
        if z["of"] and z["images"] / z["of"] > ZERO_GRADIENT_SHARE:
            out.append(Finding("gradient-nonzero", (r.case_id,),
                               f"{r.case_id}: the input gradient is zero or not finite on {z['images']} of {z['of']} "
                               f"images: the attack has nothing to follow (gradient masking or a broken model); "
                               f"{masking_hint(r.threat)}"))
    queries = r.attack_params.get("queries")
    if r.threat == "query" and queries is not None and queries < MIN_QUERIES:
        out.append(Finding("query-budget", (r.case_id,),
                           f"{r.case_id}: {queries} queries is a weak query attack (at least {MIN_QUERIES}; the "
                           f"reference Square attack uses 5,000): raise queries="))
    if "steps_2x" in d and r.correct:
        more = d["steps_2x"]
        if len(more["correct"]) == len(r.correct) and mcnemar_drop_pvalue(r.correct, more["correct"]) \
                < SIGNIFICANCE_LEVEL:
            k = sum(more["correct"])
            out.append(Finding("steps-convergence", (r.case_id,),
                               f"{r.case_id}: with {more['steps']} steps accuracy drops to {k}/{len(more['correct'])} "
                               f"from {r.correct_count}/{r.n}: the attack had not converged; raise steps"))
    return out


def ran(results: list[Result]) -> dict[str, bool]:
    """Which checks had something to check."""
    results = _checked(results)
    attacked = [r for r in results if r.threat != "clean"]
    bounded = [r for r in attacked if not is_min_norm(r)]
    by_defense: dict[tuple, list[Result]] = defaultdict(list)
    for r in bounded:
        by_defense[r.defense].append(r)
    defenses_with_clean = {r.defense for r in results if r.threat == "clean"}
    series = defaultdict(set)
    for r in bounded:
        series[(r.defense, r.threat, _attack_key(r, with_eps=False))].add(r.eps)
    informed = any(r.threat in ("whitebox", "adaptive") and any(
        o.threat == "oblivious" and _attack_key(o) == _attack_key(r) for o in rs)
        for rs in by_defense.values() for r in rs)
    gradient_free = any(q.threat == "query" and any(g.threat in ("whitebox", "adaptive") and g.eps == q.eps
                                                    for g in rs) for rs in by_defense.values() for q in rs)
    return {
        "eps0-equals-clean": any(r.eps == 0 and r.defense in defenses_with_clean for r in bounded),
        "monotone-in-eps": any(len(e) > 1 for e in series.values()),
        "informed-not-weaker": informed,
        "gradient-free-not-stronger": gradient_free,
        "undefended-breaks": any("undefended_large_eps" in r.diagnostics for r in results) or any(
            r.codec == "identity" and r.threat != "clean" and (r.eps or 0) >= LARGE_EPS for r in bounded),
        "large-eps-through-defense": any("large_eps" in r.diagnostics for r in results),
        "gradient-nonzero": any("zero_gradient" in r.diagnostics for r in results),
        "query-budget": any(r.threat == "query" for r in results),
        "steps-convergence": any("steps_2x" in r.diagnostics for r in results),
    }


def status(results: list[Result], findings: list[Finding] | None = None) -> dict[str, str]:
    """Each check's state for the report: ``ok``, ``flagged`` or ``not run: <what was missing>``."""
    findings = check(results) if findings is None else findings
    flagged = {f.check for f in findings}
    did = ran(results)
    return {c.name: "flagged" if c.name in flagged else "ok" if did[c.name] else f"not run: {c.needs}"
            for c in CHECKS}


def dependencies(case: Case, universe: Sequence[Case]) -> list[Case]:
    """The cells whose results the checks need to judge ``case`` (the cells a finding on it compares with).

    A verdict is final when its cell's test ends, so these are evaluated on demand inside that test,
    whether or not they are selected, in this shard or run later (the engine memoizes them, so a full
    run does no extra work). ``universe`` is every cell collected in the session; a reference cell it
    lacks is built (the oblivious twin of an informed cell, the clean twin of an eps-0 cell).

    * informed-not-weaker: a white-box or adaptive cell, against the oblivious cell of its defense and attack;
    * gradient-free-not-stronger: a white-box or adaptive cell, against the query cells of its defense, eps, norm;
    * monotone-in-eps: a cell, against the same defense, threat and attack at smaller eps;
    * eps0-equals-clean: an eps-0 cell, against its defense's clean cell;
    * worst cells: their parts.
    """
    if case.parts:
        return list(case.parts)
    spec = case.attack
    if spec is None or case.threat == "clean" or spec.min_norm:
        return []
    same = [c for c in universe if (c.codec, c.quality, c.rounds) == (case.codec, case.quality, case.rounds)
            and c.threat != WORST and c.identity != case.identity]
    deps: list[Case] = []
    if case.threat in INFORMED and case.codec != "identity" and spec.eot == 1:
        twin = Case(case.codec, case.quality, case.rounds, "oblivious", spec,
                    id=case.id.replace(f"-{case.threat}-", "-oblivious-", 1))
        deps.append(next((c for c in same if c.identity == twin.identity), twin))
    if case.threat in INFORMED:
        deps += [c for c in same if c.threat == "query" and c.attack.eps == spec.eps and c.attack.norm == spec.norm]
    if case.threat != "query":
        key = replace(spec, eps=0.0).key
        deps += [c for c in same if c.threat == case.threat and c.attack is not None and not c.attack.min_norm
                 and replace(c.attack, eps=0.0).key == key and c.attack.eps < spec.eps]
    if spec.eps == 0:
        clean = Case(case.codec, case.quality, case.rounds, "clean", None, id=f"{case.defense}-clean")
        deps.append(next((c for c in same if c.identity == clean.identity), clean))
    return list(dict.fromkeys(deps))


def worst_case(results: list[Result]) -> list[Result]:
    """Per defense, the images that survive every threat and attack tried against it.

    Robust accuracy as AutoAttack and RobustBench count it: an image counts only if the
    defended model gets it right clean and under every attack (minimum-norm attacks,
    which have no budget, left out). Defenses without an attacked cell have no row.
    """
    by_defense: dict[tuple, list[Result]] = defaultdict(list)
    for r in _checked(results):
        if not is_min_norm(r):
            by_defense[r.defense].append(r)
    rows = []
    for (codec, quality, rounds), rs in sorted(by_defense.items(), key=lambda kv: repr(kv[0])):
        if not any(r.threat != "clean" for r in rs) or len({r.ids for r in rs}) != 1 or not rs[0].correct:
            continue
        correct = [all(flags) for flags in zip(*(r.correct for r in rs))]
        clean = next((r for r in rs if r.threat == "clean"), None)
        q = "" if quality is None else f"-q{quality}"
        rows.append(Result.from_correct(
            correct, case_id=f"{codec}{q}-r{rounds}-worst", codec=codec, quality=quality, rounds=rounds,
            threat="worst", attack=None, eps=None, bpp=clean.bpp if clean else None,
            psnr=clean.psnr if clean else None, seconds=0.0, ids=rs[0].ids,
            diagnostics={"cells": sorted(r.case_id for r in rs)}))
    return rows
