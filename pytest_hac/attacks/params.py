"""The attack parameters, declared once: what each is called, how its value is read, how an attack's key, its
description, the report and a cell id write it, and how a marker hands it to its attacks.

:class:`~pytest_hac.attacks.AttackSpec`'s ``key``, ``describe`` and ``as_dict``, the cell id's parameters
(:mod:`pytest_hac.core.cells.cell_ids`), the marker's keys and how the marker shares them
(:mod:`pytest_hac.attacks.marker`) all read :data:`PARAMS`; a new parameter is one entry here (and its field
of ``AttackSpec`` and keyword of ``make_spec``, which a test holds equal to these names).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import HacError
from ..formats import eps_label

if TYPE_CHECKING:
    from ..registry import AttackInfo

#: An :class:`~pytest_hac.attacks.AttackSpec` (not imported: ``attacks/__init__`` builds its key, description and
#: report dict from this module).
Spec = Any


@dataclass(frozen=True)
class AttackParam:
    """One attack parameter.

    Attributes:
        name: the ``AttackSpec`` field (or property), the ``make_spec`` keyword, the marker key and the report's.
        parse: reads a value as a user writes it (attack name, value) into its type; errors name the fix.
        marker: how a marker's value reaches its attacks: ``""`` (no marker key: an attack's own, as its
            norm), ``"each"`` (every attack at every value: eps), ``"takers"`` (the attacks that take it; a
            value none of them takes is an error), ``"all"`` (every attack, which refuses it if it cannot
            take it), ``"budget"`` (gradient-free attacks and the query threat's).
        taken: whether an attack (its registry info) takes it.
        key: its part of :attr:`AttackSpec.key` (None: not written).
        shown: its part of :meth:`AttackSpec.describe` (None: not written).
        tag: its part of a cell id where it differs (None: ids never name it).
        beside_name: the key and the description write it right after the attack's name.
    """

    name: str
    parse: Callable[[str, Any], Any]
    marker: str
    taken: Callable[[AttackInfo], bool]
    key: Callable[[Spec], str | None]
    shown: Callable[[Spec], str | None]
    tag: Callable[[Spec], str] | None = None
    beside_name: bool = False

    def value(self, spec: Spec) -> Any:
        return getattr(spec, self.name)


def parse_eps(value: float | int | str) -> float:
    """Accept 0.0157, 4/255 or '4/255'; eps must lie in [0, 1] for L-inf pixel budgets."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*(?:/\s*([0-9.]+))?\s*", value)
        if not m:
            raise HacError(f"cannot read eps {value!r}; write it as 0.0157 or 4/255")
        try:
            eps = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
        except (ValueError, ZeroDivisionError):
            raise HacError(f"cannot read eps {value!r}; write it as 0.0157 or 4/255") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        eps = float(value)
    else:
        raise HacError(f"eps must be a number or a fraction like '4/255'; got {value!r}")
    if not math.isfinite(eps) or eps < 0:
        raise HacError(f"eps must be >= 0; got {value!r}")
    return eps


def _positive_int(param: str) -> Callable[[str, Any], int]:
    def parse(attack: str, value: Any) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and hasattr(value, "__index__") and not isinstance(value, bool):  # numpy integers
            value, ok = int(value), True
        if not ok or value < 1:
            raise HacError(f"attack {attack!r}: {param} must be a whole number >= 1; got {value!r}")
        return value
    return parse


def _step_size(attack: str, value: Any) -> float:
    step = parse_eps(value)
    if step <= 0:
        raise HacError(f"attack {attack!r}: alpha must be > 0; got {value!r}")
    return step


def _shown(name: str) -> Callable[[Spec], str | None]:
    """``name=value`` as a description writes it (floats to 4 digits); None where the value is None."""
    def shown(spec: Spec) -> str | None:
        value = getattr(spec, name)
        if value is None:
            return None
        return f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
    return shown


def _keyed_unless_one(name: str) -> Callable[[Spec], str | None]:
    return lambda spec: None if getattr(spec, name) == 1 else f"{name}={getattr(spec, name)}"


EPS = AttackParam(
    "eps", lambda attack, value: parse_eps(value), "each", lambda info: not info.min_norm,
    key=lambda s: None if s.eps is None else f"eps={s.eps:.6g}",
    shown=lambda s: "minimum-norm" if s.eps is None else f"eps={s.eps_label}",
    tag=lambda s: "eps" + s.eps_label.replace("/255", ""))
NORM = AttackParam(
    "norm", lambda attack, value: str(value), "", lambda info: True,
    key=lambda s: s.norm, shown=lambda s: s.norm, tag=lambda s: s.norm, beside_name=True)
STEPS = AttackParam(
    "steps", _positive_int("steps"), "takers", lambda info: info.takes_steps,
    key=lambda s: f"queries={s.steps}" if s.queries is not None else f"steps={s.steps}", shown=_shown("steps"),
    tag=lambda s: f"q{s.steps}" if s.queries is not None else f"s{s.steps}")
ALPHA = AttackParam(
    "alpha", _step_size, "takers", lambda info: info.takes_alpha,
    key=lambda s: None if s.alpha is None else f"alpha={s.alpha:.6g}", shown=_shown("alpha"),
    tag=lambda s: "a" + (eps_label(s.alpha).replace("/255", "") if s.alpha else "auto"))
RESTARTS = AttackParam(
    "restarts", _positive_int("restarts"), "all", lambda info: info.random_start,
    key=_keyed_unless_one("restarts"), shown=_shown("restarts"), tag=lambda s: f"restarts{s.restarts}")
EOT = AttackParam(
    "eot", _positive_int("eot"), "all", lambda info: info.takes_eot,
    key=_keyed_unless_one("eot"), shown=_shown("eot"), tag=lambda s: f"eot{s.eot}")
#: A gradient-free attack's steps are its queries: the key writes them as its steps' part, ids as ``q<N>``.
QUERIES = AttackParam(
    "queries", _positive_int("queries"), "budget", lambda info: info.gradient_free,
    key=lambda s: None, shown=_shown("queries"))

#: Every attack parameter, in the order the report and cell ids write them.
PARAMS: tuple[AttackParam, ...] = (EPS, NORM, STEPS, ALPHA, RESTARTS, EOT, QUERIES)
#: The order of an attack's key and description: the parameters written beside the name first.
WRITTEN: tuple[AttackParam, ...] = tuple(sorted(PARAMS, key=lambda p: not p.beside_name))
#: The parameters a cell id names where they differ from the run's defaults or between a marker's attacks.
IN_ID: tuple[AttackParam, ...] = tuple(p for p in PARAMS if p.tag is not None)
#: The marker's keys for attack parameters.
MARKER_PARAMS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.marker)
