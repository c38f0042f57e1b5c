"""The attack part of a cell id: the attack's name and every parameter that differs from the run's defaults
or between a marker's attacks of one name (``-pgd-eps8``, ``-square-q1500``), so no two measurements share an id."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...attacks import DEFAULT_QUERIES, AttackSpec, eps_label, make_spec
from ...errors import HacError

#: Attack parameters a cell id names when they differ from the run's defaults or between the marker's
#: attacks of one name, in this order, with their id tags (``-pgd-eps8``, ``-square-q1500``).
ID_PARAMS = ("eps", "norm", "steps", "alpha", "restarts", "eot")


def _tag(spec: AttackSpec, param: str) -> str:
    if param == "eps":
        return "eps" + spec.eps_label.replace("/255", "")
    if param == "norm":
        return spec.norm
    if param == "steps":
        return f"q{spec.steps}" if spec.queries is not None else f"s{spec.steps}"
    if param == "alpha":
        return "a" + (eps_label(spec.alpha).replace("/255", "") if spec.alpha else "auto")
    return f"{param}{getattr(spec, param)}"


def _reference(spec: AttackSpec, defaults: Mapping[str, Any]) -> AttackSpec | None:
    """The attack ``spec.name`` as the run's defaults would build it (None where they cannot)."""
    info = spec.info
    eps = None if info.min_norm else defaults.get("eps_l2" if spec.norm == "L2" else "eps", "4/255")
    if eps is None and not info.min_norm:
        return None
    kw: dict[str, Any] = {"norm": spec.norm}
    if info.gradient_free:
        kw["queries"] = defaults.get("queries") or DEFAULT_QUERIES
    elif info.takes_steps and defaults.get("steps") is not None:
        kw["steps"] = defaults["steps"]
    try:
        return make_spec(spec.name, eps, **kw)
    except HacError:
        return None


def attack_ids(specs: list[AttackSpec], defaults: Mapping[str, Any]) -> dict[AttackSpec, str]:
    """Each attack's part of a cell id: its name, then every parameter that differs from the run's
    defaults or from another of the marker's attacks of the same name (so no two attacks share an id)."""
    out: dict[AttackSpec, str] = {}
    for spec in specs:
        same = [s for s in specs if s.name == spec.name]
        ref = _reference(spec, defaults)
        tags = [_tag(spec, p) for p in ID_PARAMS
                if (ref is None and p == "eps") or (ref is not None and getattr(ref, p) != getattr(spec, p))
                or len({getattr(s, p) for s in same}) > 1]
        out[spec] = "-".join([spec.name] + tags)
    return out
