"""What a cell depends on (:func:`dependencies`: the cells its verdict compares with) and cells grouped by the work
they share, for ``pytest -n N --dist loadgroup`` (:func:`work_groups`).

Two cells belong together when one's evaluation or verdict needs work the other does: the same
adversarial examples (every defense's oblivious cells share the bare model's attack), the same chain
of codec rounds (a defense's clean cells), a cell its verdict depends on
(:func:`dependencies`: an informed cell's oblivious twin, a worst cell's
parts). Groups are the connected components, so xdist runs each distinct attack once per image and
the report equals the serial one. The soundness probes (a large-eps attack on the bare model, per
attack) are left out: grouping by them would put every attacked cell on one worker.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ...attacks import Threat
from .cases import Case
from .defense import gradient_paths


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
    * worst cells: their parts and what the parts depend on (a worst cell inherits its parts' findings).
    """
    if case.parts:
        return list(dict.fromkeys([*case.parts, *(d for p in case.parts for d in dependencies(p, universe))]))
    spec = case.attack
    if spec is None or not case.threat.attacked or spec.min_norm:
        return []
    same = [c for c in universe if c.defense == case.defense
            and not c.threat.info.combines and c.identity != case.identity]
    deps: list[Case] = []
    if case.threat.info.informed and case.codec != "identity" and spec.eot == 1:
        twin = Case(case.codec, case.quality, case.rounds, Threat.OBLIVIOUS, spec,
                    id=case.id.replace(f"-{case.threat}-", f"-{Threat.OBLIVIOUS}-", 1))
        deps.append(next((c for c in same if c.identity == twin.identity), twin))
    if case.threat.info.informed:
        deps += [c for c in same if c.threat.info.queries and c.attack.eps == spec.eps and c.attack.norm == spec.norm]
    if not case.threat.info.queries:
        deps += [c for c in same if c.threat is case.threat and c.attack is not None and not c.attack.min_norm
                 and c.attack.without_eps() == spec.without_eps() and c.attack.eps < spec.eps]
    if spec.eps == 0:
        clean = Case(case.codec, case.quality, case.rounds, Threat.CLEAN, None, id=f"{case.defense}-clean")
        deps.append(next((c for c in same if c.identity == clean.identity), clean))
    return list(dict.fromkeys(deps))


def _units(case: Case) -> list[str]:
    """The expensive work ``case`` itself does (or reads), by name."""
    if case.parts:
        return [u for part in case.parts for u in _units(part)]
    if not case.threat.attacked or case.attack is None:
        return [f"clean|{case.codec}|{case.quality}"]
    paths = gradient_paths(case.threat, case.codec, case.rounds)
    if paths == ("bare",):
        return [f"bare|{case.attack.key}"]
    # an adaptive cell's "approximate" path is the white-box cell's attack: one unit, one group
    return [f"{path}|{case.defense}|{case.attack.key}" for path in paths]


def work_groups(universe: list[Case]) -> dict[str, str]:
    """Cell identity -> group name; cells that share work (directly or through a dependency) share a group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    cases = list({c.identity: c for c in universe}.values())
    for case in cases:
        units = _units(case) + [u for dep in dependencies(case, cases) for u in _units(dep)]
        for unit in units:
            union(f"cell|{case.identity}", unit)
    out = {}
    for case in cases:
        root = find(f"cell|{case.identity}")
        kind = root.split("|", 1)[0]
        out[case.identity] = f"hac-{kind}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"
    return out
