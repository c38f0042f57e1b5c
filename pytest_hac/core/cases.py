"""Cases (one cell of the robustness matrix) and the expansion of a ``hac`` marker into cases.

Every attack parameter a marker sets is honoured or refused here, at collection:

* ``steps``, ``alpha`` and ``eps`` apply to the marker's attacks that take them (fgsm has
  no steps, apgd no alpha, cw no eps); one that none of them takes is an error.
* ``restarts`` and ``eot`` must suit every attack of the marker (a random start; EOT),
  and ``eot`` every threat (the bare model of oblivious cells is deterministic).
* ``queries`` is the budget of the ``query`` threat's Square attack and of gradient-free
  attacks; for a gradient-free marker attack its ``steps`` are queries too.

Options (``defaults``) apply where they fit and are never an error.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..attacks import THREATS, AttackSpec, attack_info, canonical_threat, make_spec
from ..codecs import validate_quality
from ..errors import HacError
from ..registry import ATTACKS, CODECS, AttackInfo

MARKER_KEYS = {"codecs", "rounds", "threats", "attack", "eps", "steps", "alpha", "restarts", "eot", "queries",
               "soundness", "min_accuracy"}
#: Values of the marker's ``soundness`` key (the run-wide modes are options, not marker keys).
MARKER_SOUNDNESS = ("thorough",)
#: The per-image worst case of a defense over every threat and attack of the marker
#: (robust accuracy); a cell of its own when ``min_accuracy`` or ``threats`` names it.
WORST = "worst"
#: Parameters that apply to the marker's attacks that take them; the rest must suit every attack.
SHARED_PARAMS = ("steps", "alpha")


@dataclass(frozen=True)
class Case:
    """One cell: defense (codec, quality, rounds) x threat x attack, with its gate threshold.

    ``thorough`` asks the engine for the extra soundness probes (the attack rerun at twice
    its steps), as ``--hac-soundness=thorough`` does for every cell.
    """

    codec: str
    quality: int | None
    rounds: int
    threat: str
    attack: AttackSpec | None
    threshold: float | None = None
    id: str = field(default="", compare=False)
    thorough: bool = False
    #: For the ``worst`` threat: the defense's cells whose per-image outcomes it combines.
    parts: tuple["Case", ...] = ()

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

    ``defaults`` supplies ``attack``, ``eps``, ``steps`` and ``queries`` (from options and
    ini) for markers that do not name them. Clean cells do not depend on the attack, so
    they appear once per defense.
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
    thresholds = kwargs.get("min_accuracy")
    named = _as_list(kwargs.get("threats", ["clean", "oblivious"]))
    worst = WORST in named or (isinstance(thresholds, Mapping) and WORST in thresholds)
    threats = [canonical_threat(t) for t in named if t != WORST]
    thorough = _thorough(kwargs.get("soundness"))
    specs = _attack_specs(kwargs, defaults, threats)
    query_specs = _query_specs(specs, kwargs, defaults) if "query" in threats else []
    multi_eps = len({s.eps for s in specs + query_specs if s.eps is not None}) > 1

    cases: list[Case] = []
    seen: set[str] = set()
    for name, qualities in codecs.items():
        codec = CODECS.canonical(name)
        qs = [validate_quality(codec, q) for q in (_as_list(qualities) or [None])]
        for q in qs:
            for r in ([1] if codec == "identity" else rounds):
                for threat in threats:
                    cell_specs = {"clean": [None], "query": query_specs}.get(threat, specs)
                    for spec in cell_specs:
                        _check_eot(spec, threat, codec)
                        parts = [codec] + ([f"q{q}"] if q is not None else []) + [f"r{r}", threat]
                        if spec is not None:
                            parts.append(spec.name)
                            if multi_eps and spec.eps is not None:
                                parts.append(_eps_tag(spec))
                        case_id = "-".join(parts)
                        if case_id in seen:
                            continue
                        seen.add(case_id)
                        cases.append(Case(codec, q, r, threat, spec,
                                          _threshold(thresholds, threat, case_id, spec is not None and spec.min_norm),
                                          case_id, thorough=thorough))
                if worst:
                    cases.append(_worst_case(cases, codec, q, r, thresholds))
    return cases


def work_group(case: Case) -> str:
    """The name of the expensive work ``case`` shares with others, for ``pytest -n N --dist loadgroup``.

    Cells that share an attack (every defense's oblivious cells; every threat on the undefended
    model) or a chain of codec rounds (a defense's clean cells) get one group, so xdist runs them
    on one worker and the shared work is done once. A worst-case cell goes with its oblivious part
    (the most shared), else with its defense's clean cells.
    """
    if case.parts:
        first = next((p for p in case.parts if p.threat == "oblivious"), case.parts[0])
        return work_group(first)
    if case.threat == "clean" or case.attack is None:
        q = "" if case.quality is None else f"-q{case.quality}"
        return f"hac-clean-{case.codec}{q}"
    digest = hashlib.sha256(case.attack.key.encode()).hexdigest()[:8]
    if case.codec == "identity" or case.threat == "oblivious":
        return f"hac-{case.attack.name}-{digest}"
    # an adaptive cell's paths include the white-box attack (core.defended.GRADIENT_PATHS): one group for both
    threat = "informed" if case.threat in ("whitebox", "adaptive") else case.threat
    return f"hac-{threat}-{case.defense}-{case.attack.name}-{digest}"


def _worst_case(cases: list[Case], codec: str, quality: int | None, rounds: int, thresholds: Any) -> Case:
    """The defense's worst case per image over every cell of the marker (minimum-norm attacks left out)."""
    parts = tuple(c for c in cases if (c.codec, c.quality, c.rounds) == (codec, quality, rounds)
                  and c.threat != WORST and not (c.attack is not None and c.attack.min_norm))
    if not any(c.threat != "clean" for c in parts):
        raise HacError(f"the worst case of {parts[0].defense if parts else codec} needs at least one attacked cell "
                       f"(threats oblivious, whitebox, adaptive or query)")
    case_id = f"{parts[0].defense}-{WORST}"
    return Case(codec, quality, rounds, WORST, None, _threshold(thresholds, WORST, case_id), case_id, parts=parts)


def _thorough(value: Any) -> bool:
    if value is None:
        return False
    if value not in MARKER_SOUNDNESS:
        raise HacError(f"hac marker: soundness must be {' or '.join(map(repr, MARKER_SOUNDNESS))} (rerun the attack "
                       f"at twice its steps); got {value!r}. Failing or warning is the run's --hac-soundness")
    return True


def _takes(info: AttackInfo, param: str) -> bool:
    return {"steps": info.takes_steps, "alpha": info.takes_alpha}[param]


def _attack_names(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    names = _as_list(kwargs.get("attack", defaults.get("attack", "pgd")))
    if not names:
        raise HacError("hac marker: attack must not be empty")
    for name in names:
        if not isinstance(name, str):
            raise HacError(f"hac marker: attack names are strings like 'pgd'; got {name!r}")
    return list(dict.fromkeys(ATTACKS.canonical(n) for n in names))


def _attack_specs(kwargs: Mapping[str, Any], defaults: Mapping[str, Any], threats: list[str]) -> list[AttackSpec]:
    """The marker's attacks x eps values, each with the parameters it takes."""
    names = _attack_names(kwargs, defaults)
    infos = {n: attack_info(n) for n in names}
    bounded = [n for n in names if not infos[n].min_norm]
    eps_values = _as_list(kwargs["eps"] if "eps" in kwargs else defaults.get("eps", "4/255"))
    if "eps" in kwargs and not bounded:
        make_spec(names[0], kwargs["eps"])  # raises: says the attack has no eps
    if bounded and not eps_values:
        raise HacError("hac marker: eps must not be empty")
    for param in SHARED_PARAMS:
        if kwargs.get(param) is not None and not any(_takes(infos[n], param) for n in names):
            # make_spec's message names the attack, the parameter and what to use instead
            make_spec(names[0], None if infos[names[0]].min_norm else eps_values[0], **{param: kwargs[param]})
            raise HacError(f"hac marker: no attack of {names} takes {param}; drop it")  # pragma: no cover
    queries = kwargs.get("queries")
    if queries is not None and "query" not in threats and not any(i.gradient_free for i in infos.values()):
        raise HacError(f"hac marker: queries={queries!r} is the budget of the 'query' threat and of gradient-free "
                       f"attacks; the marker has neither (add threats=[..., 'query'] or drop queries)")
    specs: list[AttackSpec] = []
    for name in names:
        kw = _params_for(infos[name], kwargs, defaults)
        for eps in ([None] if infos[name].min_norm else eps_values):
            specs.append(make_spec(name, eps, **kw))
    return specs


def _params_for(info: AttackInfo, kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The marker's (else the options') parameters that attack ``info`` takes; restarts and eot always."""
    kw: dict[str, Any] = {k: kwargs[k] for k in ("restarts", "eot") if kwargs.get(k) is not None}
    for param in SHARED_PARAMS:
        value = kwargs.get(param)
        if value is None and param == "steps" and not info.gradient_free:
            value = defaults.get("steps")  # --hac-steps counts gradient steps, not queries
        if value is not None and _takes(info, param):
            kw[param] = value
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


def _check_eot(spec: AttackSpec | None, threat: str, codec: str) -> None:
    """EOT averages gradients over a random defense: pointless where the attacked model is the bare one."""
    if spec is None or spec.eot == 1 or threat == "query":
        return
    if threat == "oblivious" or codec == "identity":
        raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but the "
                       f"{threat} cells of codec {codec!r} attack the bare, deterministic model; give eot in a marker "
                       f"whose threats are whitebox/adaptive on a stochastic codec")


def _threshold(spec: Any, threat: str, case_id: str, min_norm: bool = False) -> float | None:
    """``min_accuracy`` may be one number or a dict keyed by threat (or by case id glob).

    A minimum-norm attack's cell (cw) has no eps budget, so thresholds meant for the
    eps-bounded cells of a threat do not apply to it: only a pattern naming its id does.
    """
    import fnmatch

    if spec is None:
        return None
    if min_norm and not isinstance(spec, Mapping):
        return None
    if isinstance(spec, Mapping):
        if threat in spec and not min_norm:
            value = spec[threat]
        else:
            matches = [v for k, v in spec.items()
                       if k not in THREATS and k != WORST and fnmatch.fnmatchcase(case_id, k)]
            if not matches:
                return None
            value = matches[-1]
    else:
        value = spec
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise HacError(f"min_accuracy must be a fraction in [0, 1]; got {value!r}")
    return value

