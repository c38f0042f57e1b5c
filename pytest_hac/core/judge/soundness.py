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
from dataclasses import dataclass

from ...attacks import Threat, eps_label
from ..cells.cases import Case
from ..cells.defense import Defense, masking_hint
from .diagnostics import Diagnostics
from .result import Result, worst_per_image
from .stats import SIGNIFICANCE_LEVEL, mcnemar_drop_pvalue, wilson_interval

#: What findings do (``--hac-soundness``), one sentence each for the report's header.
SOUNDNESS_MODES: dict[str, str] = {
    "fail": "a finding fails the cells it implicates (`--hac-soundness=warn` makes findings report lines only)",
    "warn": "findings are report lines only (`--hac-soundness=warn`); they fail nothing",
    "thorough": "a finding fails the cells it implicates; attacked cells are also rerun with twice the steps",
}
#: A cell's eps from which an undefended model must break under a working attack (the cell itself, not a probe).
UNDEFENDED_EPS = 8 / 255 - 1e-9
#: Accuracy an attack must push below (lower end of the 95% interval) where it must break the model.
NEAR_ZERO = 0.1
#: Share of images that may survive the 64/255 attack through the defense. A sound differentiable path
#: drives accuracy to about 0 at that budget (Carlini et al., 2019), so more than a few percent surviving
#: is masking: on the probe's 32 images, 2 or more (1 is tolerated: a last-step rounding can save one).
LARGE_EPS_SURVIVORS = 0.05
#: Share of images whose input gradient may be zero or not finite before a gradient attack is suspect.
ZERO_GRADIENT_SHARE = 0.01
#: How far a codec's stand-in may be from its decoded image, relative to how far the decoded image is from the
#: input (RMS per image, the median over the probe's clean images). Calibrated on the codecs that ship: libjpeg
#: against kornia's differentiable JPEG is the farthest honest pair (0.17 to 0.53 over qualities 5..95 and one
#: to three rounds, on digits and on the embedded photos; per image at most 0.64); CompressAI models' and the
#: embedded learned codecs' straight-through forward is within 0.14 (random and trained weights, up to three
#: rounds). A stand-in that computes another function is about as far from the decoded image as the decoded
#: image is from the input, or farther (a 5x5 binomial blur for JPEG q10: 1.1, for q50: 2.1).
STAND_IN_DISTANCE = 0.8
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
    Check("large-eps-through-defense", "a white-box or adaptive attack at eps 64/255 breaks the defended model "
          "through each of its gradient paths", "no white-box or adaptive cell with an L-inf gradient attack"),
    Check("gradient-nonzero", "input gradients are non-zero and finite on at least 99% of images, on every "
          "gradient path", "no gradient attack in the run"),
    Check("stand-in-fidelity", "the codec's differentiable stand-in computes the codec's function (its image is "
          f"closer to the decoded image than {STAND_IN_DISTANCE:g}x the decoded image's distance from the input)",
          "no white-box or adaptive cell on a deterministic codec"),
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


def implicating(findings: Sequence[Finding], case_id: str, parts: Sequence[str] = ()) -> list[tuple[Finding, str]]:
    """The findings that implicate a cell, each with the cell it names: the cell itself, or one of its ``parts``.

    A worst cell inherits its parts' findings: it is no sounder than the weakest evaluation it is built from.
    """
    out = []
    for f in findings:
        hit = next((c for c in (case_id, *parts) if f.implicates(c)), None)
        if hit is not None:
            out.append((f, hit))
    return out


def _significantly_higher(a: Result, b: Result) -> bool:
    """``a`` beats ``b`` on the same images beyond sampling noise (one-sided McNemar at 5%)."""
    if a.correct and b.correct and len(a.correct) == len(b.correct):
        return mcnemar_drop_pvalue(a.correct, b.correct) < SIGNIFICANCE_LEVEL
    return a.ci_low > b.ci_high




def _near_zero_missed(correct: int, n: int) -> bool:
    return n > 0 and wilson_interval(correct, n)[0] > NEAR_ZERO


def _checked(results: list[Result]) -> list[Result]:
    return [r for r in results if not r.threat.info.combines]


def check(results: list[Result]) -> list[Finding]:
    """All soundness findings for a set of results (an empty list means no check flagged anything)."""
    findings: list[Finding] = []
    results = _checked(results)
    by_defense: dict[Defense, list[Result]] = defaultdict(list)
    for r in results:
        by_defense[r.defense].append(r)
    for rs in by_defense.values():
        clean = next((r for r in rs if r.threat is Threat.CLEAN), None)
        bounded = [r for r in rs if r.spec is not None and not r.min_norm]
        for r in bounded:
            if clean is not None and r.eps == 0 and r.correct != clean.correct and not r.threat.info.queries:
                findings.append(Finding("eps0-equals-clean", (r.case_id, clean.case_id),
                                        f"{r.case_id}: an attack with eps = 0 changed predictions", (r.case_id,)))
        series: dict[tuple, list[Result]] = defaultdict(list)
        for r in bounded:
            series[(r.threat, r.spec.without_eps())].append(r)
        for group in series.values():
            group.sort(key=lambda r: r.eps or 0)
            for lo, hi in zip(group, group[1:]):
                if (hi.eps or 0) > (lo.eps or 0) and _significantly_higher(hi, lo):
                    findings.append(Finding("monotone-in-eps", (lo.case_id, hi.case_id),
                                            f"{hi.case_id} is more accurate than {lo.case_id} at a smaller eps: the "
                                            f"attack is not converging (more steps or restarts)", (hi.case_id,)))
        for r in bounded:
            if not r.threat.info.informed:
                continue
            for o in bounded:
                if o.threat is Threat.OBLIVIOUS and o.spec == r.spec and _significantly_higher(r, o):
                    findings.append(Finding("informed-not-weaker", (r.case_id, o.case_id),
                                            f"{r.case_id} ({r.accuracy:.2f}) is above {o.case_id} ({o.accuracy:.2f}): "
                                            f"the defense-aware attack is weaker, a sign of gradient masking; "
                                            f"{masking_hint(r.threat)}",
                                            (r.case_id,)))
        for q in bounded:
            if not q.threat.info.queries:
                continue
            for g in bounded:
                if (g.threat.info.informed and g.eps == q.eps and g.spec.norm == q.spec.norm
                        and _significantly_higher(g, q)):
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
        if (r.codec == "identity" and r.spec is not None and not r.min_norm and r.attack in ("pgd", "apgd",
                                                                                             "autoattack")
                and r.eps >= UNDEFENDED_EPS and r.ci_low > NEAR_ZERO):
            findings.append(Finding("undefended-breaks", (r.case_id,),
                                    f"{r.case_id}: the undefended model keeps {r.accuracy:.2f} accuracy under a "
                                    f"large-eps attack; expected near 0 (is it in eval mode, returning logits?)"))
    # The engine's probe: the cell's own attack at a large eps on the bare model (one per attack).
    probes: dict[object, list[Result]] = defaultdict(list)
    for r in results:
        if r.diagnostics.undefended_large_eps is not None:
            probes[r.spec.without_eps()].append(r)
    for group in probes.values():
        probe = group[0].diagnostics.undefended_large_eps
        if _near_zero_missed(probe.correct, probe.n):
            cells = tuple(sorted(r.case_id for r in group))
            findings.append(Finding(
                "undefended-breaks", cells,
                f"{group[0].attack} at eps {eps_label(probe.eps, group[0].spec.norm)} leaves the undefended model "
                f"{probe.correct}/{probe.n} correct; expected near 0: the attack or the model is broken (eval mode? "
                f"logits?), so every cell it attacked is suspect"))
    return findings


def _own_measurements(r: Result) -> list[Finding]:
    """Checks on what the engine measured while this one cell ran. Each gradient path is judged on its own: per
    image the cell keeps the worst case over its paths, so a path that breaks every image (the identity backward)
    would otherwise vouch for a masked sibling."""
    out = []
    d = r.diagnostics
    p = d.large_eps
    if p is not None:
        limit = LARGE_EPS_SURVIVORS * p.n
        survived = {path: c for path, c in (p.paths or {}).items() if c > limit}
        if survived:
            out.append(Finding("large-eps-through-defense", (r.case_id,),
                               f"{r.case_id}: the same attack at eps {eps_label(p.eps, r.spec.norm)} through "
                               f"{_paths_text(survived, p.n)} leaves more than {LARGE_EPS_SURVIVORS:.0%} of the images "
                               f"correct; expected near 0: "
                               f"the gradient on that path is broken (gradient masking), and a sibling path that "
                               f"breaks the images cannot vouch for it; {masking_hint(r.threat)}"))
        elif p.paths is None and p.correct > limit:
            out.append(Finding("large-eps-through-defense", (r.case_id,),
                               f"{r.case_id}: the same attack at eps {eps_label(p.eps, r.spec.norm)} leaves "
                               f"{p.correct}/{p.n} images correct (more than {LARGE_EPS_SURVIVORS:.0%}); expected near "
                               f"0: the gradient through the defense is broken (gradient masking); "
                               f"{masking_hint(r.threat)}"))
    z = d.zero_gradient
    if z is not None and z.of:
        zero = {path: c for path, c in (z.paths or {}).items() if c / z.of > ZERO_GRADIENT_SHARE}
        if zero or (z.paths is None and z.images / z.of > ZERO_GRADIENT_SHARE):
            where = (f"on {_paths_text(zero, z.of, what='images with a zero or non-finite input gradient')}" if zero
                     else f"on {z.images} of {z.of} images")
            out.append(Finding("gradient-nonzero", (r.case_id,),
                               f"{r.case_id}: the input gradient is zero or not finite {where}: the attack has "
                               f"nothing to follow there (gradient masking or a broken model); "
                               f"{masking_hint(r.threat)}"))
    s_in = d.stand_in
    if s_in is not None and s_in.distance > STAND_IN_DISTANCE:
        out.append(Finding("stand-in-fidelity", (r.case_id,),
                           f"{r.case_id}: the codec's stand-in (approximate) is not the codec's function: on "
                           f"{s_in.n} clean images its output is {s_in.distance:.2f}x as far from the decoded "
                           f"image as the decoded image is from the input (median; at most {STAND_IN_DISTANCE:g} "
                           f"expected), and the classifier's prediction differs on {s_in.disagree}/{s_in.n}: "
                           f"white-box gradients describe another defense; make approximate() follow "
                           f"decompress(compress(x)) (or leave it out: the default is BPDA with the identity)"))
    queries = None if r.spec is None else r.spec.queries
    if r.threat.info.queries and queries is not None and queries < MIN_QUERIES:
        out.append(Finding("query-budget", (r.case_id,),
                           f"{r.case_id}: {queries} queries is a weak query attack (at least {MIN_QUERIES}; the "
                           f"reference Square attack uses 5,000): raise queries="))
    more = d.steps_2x
    if more is not None and r.correct and len(more.correct) == len(r.correct) \
            and mcnemar_drop_pvalue(r.correct, more.correct) < SIGNIFICANCE_LEVEL:
        out.append(Finding("steps-convergence", (r.case_id,),
                           f"{r.case_id}: with {more.steps} steps accuracy drops to {sum(more.correct)}/"
                           f"{len(more.correct)} from {r.correct_count}/{r.n}: the attack had not converged; "
                           f"raise steps"))
    return out


def _paths_text(counts: dict[str, int], n: int, what: str = "images correct") -> str:
    """``path `bpda` (11/32 images correct)`` for each path in ``counts``."""
    return ", ".join(f"path `{path}` ({c}/{n} {what})" for path, c in counts.items())


def ran(results: list[Result]) -> dict[str, bool]:
    """Which checks had something to check."""
    results = _checked(results)
    bounded = [r for r in results if r.spec is not None and not r.min_norm]
    by_defense: dict[Defense, list[Result]] = defaultdict(list)
    for r in bounded:
        by_defense[r.defense].append(r)
    defenses_with_clean = {r.defense for r in results if r.threat is Threat.CLEAN}
    series = defaultdict(set)
    for r in bounded:
        series[(r.defense, r.threat, r.spec.without_eps())].add(r.eps)
    informed = any(r.threat.info.informed and any(o.threat is Threat.OBLIVIOUS and o.spec == r.spec for o in rs)
                   for rs in by_defense.values() for r in rs)
    gradient_free = any(q.threat.info.queries and any(g.threat.info.informed and g.eps == q.eps for g in rs)
                        for rs in by_defense.values() for q in rs)
    measured = [r.diagnostics for r in results]
    return {
        "eps0-equals-clean": any(r.eps == 0 and r.defense in defenses_with_clean for r in bounded),
        "monotone-in-eps": any(len(e) > 1 for e in series.values()),
        "informed-not-weaker": informed,
        "gradient-free-not-stronger": gradient_free,
        "undefended-breaks": any(d.undefended_large_eps is not None for d in measured) or any(
            r.codec == "identity" and r.eps >= UNDEFENDED_EPS for r in bounded),
        "large-eps-through-defense": any(d.large_eps is not None for d in measured),
        "gradient-nonzero": any(d.zero_gradient is not None for d in measured),
        "stand-in-fidelity": any(d.stand_in is not None for d in measured),
        "query-budget": any(r.threat.info.queries for r in results),
        "steps-convergence": any(d.steps_2x is not None for d in measured),
    }


def status(results: list[Result], findings: list[Finding] | None = None) -> dict[str, str]:
    """Each check's state for the report: ``ok``, ``flagged`` or ``not run: <what was missing>``."""
    findings = check(results) if findings is None else findings
    flagged = {f.check for f in findings}
    did = ran(results)
    return {c.name: "flagged" if c.name in flagged else "ok" if did[c.name] else f"not run: {c.needs}"
            for c in CHECKS}


def worst_case(results: list[Result]) -> list[Result]:
    """Per defense, the images that survive every threat and attack tried against it.

    Robust accuracy as AutoAttack and RobustBench count it: an image counts only if the
    defended model gets it right clean and under every attack (minimum-norm attacks,
    which have no budget, left out). Defenses without an attacked cell have no row.
    """
    by_defense: dict[Defense, list[Result]] = defaultdict(list)
    for r in _checked(results):
        if not r.min_norm:
            by_defense[r.defense].append(r)
    rows = []
    for defense, rs in sorted(by_defense.items(), key=lambda kv: repr(tuple(kv[0]))):
        if not any(r.spec is not None for r in rs) or len({r.ids for r in rs}) != 1 or not rs[0].correct:
            continue
        clean = next((r for r in rs if r.threat is Threat.CLEAN), None)
        case = Case(defense.codec, defense.quality, defense.rounds, Threat.WORST, None, id=f"{defense}-{Threat.WORST}")
        rows.append(Result.from_correct(
            worst_per_image(rs), case, bpp=clean.bpp if clean else None, psnr=clean.psnr if clean else None,
            seconds=0.0, ids=rs[0].ids,
            diagnostics=Diagnostics(cells=tuple(sorted(r.case_id for r in rs)))))
    return rows

