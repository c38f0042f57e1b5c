"""Cells grouped by the work they share, for ``pytest -n N --dist loadgroup``.

Two cells belong together when one's evaluation or verdict needs work the other does: the same
adversarial examples (every defense's oblivious cells share the bare model's attack), the same chain
of codec rounds (a defense's clean cells), a cell its verdict depends on
(:func:`~pytest_hac.core.soundness.dependencies`: an informed cell's oblivious twin, a worst cell's
parts). Groups are the connected components, so xdist runs each distinct attack once per image and
the report equals the serial one. The soundness probes (a large-eps attack on the bare model, per
attack) are left out: grouping by them would put every attacked cell on one worker.
"""
from __future__ import annotations

import hashlib

from .cases import Case
from .defended import gradient_paths
from .soundness import dependencies


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
