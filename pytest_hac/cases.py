"""Cases (one cell of the robustness matrix) and the expansion of a ``hac`` marker into cases."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .attacks import THREATS, AttackSpec, canonical_threat, is_gradient_free, make_spec
from .codecs import CODECS, validate_quality
from .errors import HacError

MARKER_KEYS = {"codecs", "rounds", "threats", "attack", "eps", "steps", "alpha", "restarts", "eot", "min_accuracy"}


@dataclass(frozen=True)
class Case:
    """One cell: defense (codec, quality, rounds) x threat x attack, with its gate threshold."""

    codec: str
    quality: int | None
    rounds: int
    threat: str
    attack: AttackSpec | None
    threshold: float | None = None
    id: str = field(default="", compare=False)

    @property
    def defense(self) -> str:
        q = "" if self.quality is None else f"-q{self.quality}"
        return f"{self.codec}{q}-r{self.rounds}"


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset, range)):
        return list(value)
    return [value]


def _eps_tag(spec: AttackSpec) -> str:
    return "eps" + spec.eps_label.replace("/255", "")


def expand(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[Case]:
    """Turn ``@pytest.mark.hac(...)`` arguments into the list of cases, ids included.

    ``defaults`` supplies ``attack``, ``eps``, ``steps`` (from options and ini)
    for markers that do not name them. Clean cells do not depend on the attack,
    so they appear once per defense.
    """
    unknown = set(kwargs) - MARKER_KEYS
    if unknown:
        raise HacError(f"unknown hac marker argument(s) {sorted(unknown)}; valid: {sorted(MARKER_KEYS)}")
    codecs = kwargs.get("codecs", {"identity": [None]})
    if isinstance(codecs, str):
        codecs = {codecs: [None]}
    if not isinstance(codecs, Mapping) or not codecs:
        raise HacError("hac marker: codecs must be a dict like {'jpeg': [25, 50]}")
    rounds = [int(r) for r in _as_list(kwargs.get("rounds", 1))] or [1]
    bad = [r for r in rounds if r < 1]
    if bad:
        raise HacError(f"rounds must be >= 1 (1 = compress once); got {bad}")
    threats = [canonical_threat(t) for t in _as_list(kwargs.get("threats", ["clean", "oblivious"]))]
    specs = _attack_specs(kwargs, defaults)
    multi_eps = len({s.eps for s in specs}) > 1
    thresholds = kwargs.get("min_accuracy")

    cases: list[Case] = []
    seen: set[str] = set()
    for name, qualities in codecs.items():
        codec = CODECS.canonical(name)
        qs = [validate_quality(codec, q) for q in (_as_list(qualities) or [None])]
        for q in qs:
            for r in ([1] if codec == "identity" else rounds):
                for threat in threats:
                    for spec in ([None] if threat == "clean" else specs):
                        if threat == "query" and spec is not None and not is_gradient_free(spec):
                            spec = make_spec("square", spec.eps, norm=spec.norm)
                        parts = [codec] + ([f"q{q}"] if q is not None else []) + [f"r{r}", threat]
                        if spec is not None:
                            parts.append(spec.name)
                            if multi_eps:
                                parts.append(_eps_tag(spec))
                        case_id = "-".join(parts)
                        if case_id in seen:
                            continue
                        seen.add(case_id)
                        cases.append(Case(codec, q, r, threat, spec, _threshold(thresholds, threat, case_id), case_id))
    return cases


def _attack_specs(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[AttackSpec]:
    attacks = _as_list(kwargs.get("attack", defaults.get("attack", "pgd")))
    eps_values = _as_list(kwargs.get("eps", defaults.get("eps", "4/255")))
    if not attacks or not eps_values:
        raise HacError("hac marker: attack and eps must not be empty")
    extra = {k: kwargs.get(k, defaults.get(k)) for k in ("steps", "alpha", "restarts", "eot")}
    extra = {k: v for k, v in extra.items() if v is not None}
    return [make_spec(a, e, **extra) for a in attacks for e in eps_values]


def _threshold(spec: Any, threat: str, case_id: str) -> float | None:
    """``min_accuracy`` may be one number or a dict keyed by threat (or by case id glob)."""
    import fnmatch

    if spec is None:
        return None
    if isinstance(spec, Mapping):
        if threat in spec:
            value = spec[threat]
        else:
            matches = [v for k, v in spec.items() if k not in THREATS and fnmatch.fnmatchcase(case_id, k)]
            if not matches:
                return None
            value = matches[-1]
    else:
        value = spec
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise HacError(f"min_accuracy must be a fraction in [0, 1]; got {value!r}")
    return value


def describe(cases: Iterable[Case]) -> str:
    return ", ".join(c.id for c in cases)
