"""A marker's attacks, read once: the attacks it names at each of its eps, each with the parameters it takes, the
query threat's attacks, and the attack the run's defaults would build for each (what a cell id names the
differences from). How the marker hands each parameter to its attacks is the parameter's ``marker`` in
:data:`.params.PARAMS`:

* ``steps`` and ``alpha`` apply to the marker's attacks that take them (fgsm has no steps, apgd no alpha); one
  that none of them takes is an error. ``eps`` applies to every eps-bounded attack (cw has none).
* ``restarts`` and ``eot`` must suit every attack of the marker (a random start; EOT).
* ``queries`` is the budget of the ``query`` threat's Square attack and of gradient-free attacks; for a
  gradient-free marker attack its ``steps`` are queries too.

The run's defaults (``Settings.marker_defaults``: attack, eps, eps_l2, steps, queries) apply where they fit and
are never an error.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BudgetWarning, HacError
from ..registry import ATTACKS, AttackInfo
from . import DEFAULT_QUERIES, AttackSpec, attack_info, implausible_eps, make_spec
from .params import PARAMS

#: Parameters that apply to the marker's attacks that take them (``steps``, ``alpha``).
SHARED = tuple(p for p in PARAMS if p.marker == "takers")
#: Parameters every attack of the marker is given, and refuses if it cannot take them (``restarts``, ``eot``).
EVERY = tuple(p for p in PARAMS if p.marker == "all")


@dataclass(frozen=True)
class MarkerAttacks:
    """What a marker's attack parameters become: typed specs, nothing left to parse."""

    #: The marker's attacks x its eps values, in the order written.
    attacks: tuple[AttackSpec, ...]
    #: The query threat's attacks (empty when the marker runs no query threat).
    query_attacks: tuple[AttackSpec, ...]
    #: Each attack and query attack with the attack the run's defaults would build for its name and norm
    #: (None where they cannot, e.g. an L2 attack without an L2 default).
    references: tuple[tuple[AttackSpec, AttackSpec | None], ...]
    #: ``large_eps=True``: L-inf budgets above 32/255 are meant (no warning).
    large_eps: bool


def marker_attacks(kwargs: Mapping[str, Any], defaults: Mapping[str, Any], *, queried: bool) -> MarkerAttacks:
    """The marker's attack parameters (``kwargs``: the marker's keyword arguments) read once; ``queried``: the
    marker runs a threat that only queries (its Square attacks are built too). Raises the usage errors."""
    attacks, large = _attack_specs(kwargs, defaults, queried)
    queries = _query_specs(attacks, kwargs, defaults) if queried else []
    every = list(dict.fromkeys(attacks + queries))
    return MarkerAttacks(tuple(attacks), tuple(queries), tuple((s, _reference(s, defaults)) for s in every), large)


def as_list(value: Any) -> list:
    """A marker value as a list: a collection's items, one value alone, nothing for None."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset, range)):
        return list(value)
    return [value]


def _attack_names(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    names = as_list(kwargs.get("attack", defaults.get("attack", "pgd")))
    if not names:
        raise HacError("hac marker: attack must not be empty")
    for name in names:
        if not isinstance(name, str):
            raise HacError(f"hac marker: attack names are strings like 'pgd'; got {name!r}")
    return list(dict.fromkeys(ATTACKS.canonical(n) for n in names))


def _attack_specs(kwargs: Mapping[str, Any], defaults: Mapping[str, Any],
                  queried: bool) -> tuple[list[AttackSpec], bool]:
    """The marker's attacks x eps values, each with the parameters it takes; whether large eps are meant."""
    names = _attack_names(kwargs, defaults)
    infos = {n: attack_info(n) for n in names}
    bounded = [n for n in names if not infos[n].min_norm]
    eps_values = as_list(kwargs["eps"]) if "eps" in kwargs else None
    if "eps" in kwargs and not bounded:
        make_spec(names[0], kwargs["eps"])  # raises: says the attack has no eps
    if bounded and eps_values == []:
        raise HacError("hac marker: eps must not be empty")
    for param in SHARED:
        if kwargs.get(param.name) is not None and not any(param.taken(infos[n]) for n in names):
            # make_spec's message names the attack, the parameter and what to use instead
            eps = None if infos[names[0]].min_norm else (eps_values or [_default_eps(names[0], infos[names[0]],
                                                                                     defaults)])[0]
            make_spec(names[0], eps, **{param.name: kwargs[param.name]})
            raise HacError(f"hac marker: no attack of {names} takes {param.name}; drop it")  # pragma: no cover
    queries = kwargs.get("queries")
    if queries is not None and not queried and not any(i.gradient_free for i in infos.values()):
        raise HacError(f"hac marker: queries={queries!r} is the budget of the 'query' threat and of gradient-free "
                       f"attacks; the marker has neither (add threats=[..., 'query'] or drop queries)")
    free = [n for n in names if infos[n].gradient_free]
    if free and kwargs.get("steps") is not None:
        if queries is not None and len(free) == len(names):
            raise HacError(f"hac marker: {free[0]!r} is gradient-free: its steps are its queries, so steps="
                           f"{kwargs['steps']!r} and queries={queries!r} say the same thing twice; keep queries")
        if queries is None and len(free) < len(names):
            raise HacError(f"hac marker: steps={kwargs['steps']!r} would be the steps of "
                           f"{', '.join(n for n in names if n not in free)} and the query budget of "
                           f"{', '.join(free)}; give the gradient-free budget as queries= (e.g. queries=5000)")
    large = kwargs.get("large_eps", False)
    if not isinstance(large, bool):
        raise HacError(f"hac marker: large_eps is True or False (True allows L-inf eps above 32/255); got {large!r}")
    specs: list[AttackSpec] = []
    for name in names:
        kw = _params_for(infos[name], kwargs, defaults)
        for eps in ([None] if infos[name].min_norm else eps_values or [_default_eps(name, infos[name], defaults)]):
            spec = make_spec(name, eps, **kw)
            why = None if spec.eps is None else implausible_eps(eps, spec.eps, spec.norm)
            if why is not None and not (large and spec.eps > 1 / 255):
                warnings.warn(BudgetWarning(f"hac marker: {why}"), stacklevel=4)
            specs.append(spec)
    return specs, large


def _default_eps(name: str, info: AttackInfo, defaults: Mapping[str, Any]) -> Any:
    """The run's eps for a marker that names none: ``--hac-eps`` for L-inf, ``l2=`` of ``--hac-eps`` for L2.

    An L2 radius depends on the image size (RobustBench: 0.5 on 32-px CIFAR-10, 3.0 on 224-px
    ImageNet), so an L2 attack never falls back on the L-inf budget.
    """
    if info.norm != "L2":
        return defaults.get("eps", "4/255")
    eps = defaults.get("eps_l2")
    if eps is None:
        raise HacError(f"attack {name!r} is an L2 attack and neither the marker nor --hac-eps's l2= gives its eps; L2 "
                       f"radii depend on the image size (RobustBench: 0.5 on 32-px CIFAR-10, 3.0 on 224-px "
                       f"ImageNet): set eps= in the marker or --hac-eps=4/255,l2=R")
    return eps


def _params_for(info: AttackInfo, kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The marker's (else the options') parameters that attack ``info`` takes; restarts and eot always."""
    kw: dict[str, Any] = {p.name: kwargs[p.name] for p in EVERY if kwargs.get(p.name) is not None}
    for param in SHARED:
        value = kwargs.get(param.name)
        if value is None and param.name == "steps" and not info.gradient_free:
            value = defaults.get("steps")  # --hac-steps counts gradient steps, not queries
        if value is not None and param.taken(info) and not (info.gradient_free and kwargs.get("queries")):
            kw[param.name] = value
    if info.gradient_free:
        queries = kwargs.get("queries")
        if queries is None and "steps" not in kw:
            queries = defaults.get("queries")
        if queries is not None:
            kw["queries"] = queries
    return kw


def _query_specs(specs: list[AttackSpec], kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[AttackSpec]:
    """The query threat's attacks: gradient-free marker attacks as they are, Square for the others.

    Square's budget: the marker's ``queries``, else the options' ``queries``, else
    :data:`~pytest_hac.attacks.DEFAULT_QUERIES`. Restarts carry over; eot does not (a
    query attack has no gradients to average).
    """
    queries = kwargs.get("queries")
    if queries is None:
        queries = defaults.get("queries")
    out: list[AttackSpec] = []
    for spec in specs:
        if spec.min_norm:
            continue  # no eps ball to search in; the marker's eps-bounded attacks give the query cells
        if spec.info.gradient_free:
            out.append(spec)
        else:
            out.append(make_spec("square", spec.eps, norm=spec.norm, queries=queries, restarts=spec.restarts))
    if not out:
        raise HacError(f"the 'query' threat runs Square inside an eps ball, but attack {specs[0].name!r} is a "
                       f"minimum-norm attack without eps; add an eps-bounded attack (e.g. attack=['cw', 'pgd'], "
                       f"eps='4/255') or drop the 'query' threat")
    return list(dict.fromkeys(out))


def _reference(spec: AttackSpec, defaults: Mapping[str, Any]) -> AttackSpec | None:
    """The attack ``spec.name`` at ``spec.norm`` as the run's defaults would build it (None where they cannot)."""
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
