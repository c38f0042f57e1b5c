"""The attack part of a cell id: the attack's name and every parameter that differs from the run's defaults
or between a marker's attacks of one name (``-pgd-eps8``, ``-square-q1500``), so no two measurements share an id."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...attacks import AttackSpec
from ...attacks.params import EPS, IN_ID

#: Attack parameters a cell id names when they differ from the run's defaults or between the marker's
#: attacks of one name, in this order (their id tags are :attr:`~pytest_hac.attacks.params.AttackParam.tag`).
ID_PARAMS = tuple(p.name for p in IN_ID)


def attack_ids(specs: Iterable[AttackSpec],
               references: Mapping[AttackSpec, AttackSpec | None]) -> dict[AttackSpec, str]:
    """Each attack's part of a cell id: its name, then every parameter that differs from ``references[spec]``
    (the attack the run's defaults would build; None where they cannot, and then the id names its eps) or from
    another of the marker's attacks of the same name (so no two attacks share an id)."""
    specs = list(specs)
    out: dict[AttackSpec, str] = {}
    for spec in specs:
        same = [s for s in specs if s.name == spec.name]
        ref = references.get(spec)
        tags = [p.tag(spec) for p in IN_ID
                if (ref is None and p is EPS) or (ref is not None and p.value(ref) != p.value(spec))
                or len({p.value(s) for s in same}) > 1]
        out[spec] = "-".join([spec.name] + tags)
    return out
