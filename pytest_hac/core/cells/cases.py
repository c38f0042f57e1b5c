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

import difflib
import fnmatch
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ...attacks import AttackSpec, Threat, attack_info, implausible_eps, make_spec
from ...errors import BudgetWarning, HacError
from ...registry import ATTACKS, CODECS, AttackInfo, validate_quality
from .cell_ids import attack_ids
from .defense import Defense

MARKER_KEYS = {"codecs", "rounds", "threats", "attack", "eps", "steps", "alpha", "restarts", "eot", "queries",
               "soundness", "min_accuracy", "large_eps"}
#: Values of the marker's ``soundness`` key (the run-wide modes are options, not marker keys).
MARKER_SOUNDNESS = ("thorough",)
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
    threat: Threat
    attack: AttackSpec | None
    #: The gate (the marker's ``min_accuracy``, or the thresholds file's): not part of the cell's identity.
    threshold: float | None = field(default=None, compare=False)
    id: str = field(default="", compare=False)
    thorough: bool = False
    #: For the ``worst`` threat: the defense's cells whose per-image outcomes it combines.
    parts: tuple["Case", ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "threat", Threat.of(self.threat))

    @property
    def defense(self) -> Defense:
        return Defense(self.codec, self.quality, self.rounds)

    @property
    def identity(self) -> str:
        """What the cell measures, whatever its id says: defense, threat and the whole attack (and, for a
        worst cell, its parts). Two cells with one identity are the same measurement."""
        if self.parts:
            return f"{self.defense}|{Threat.WORST}|" + ";".join(sorted(p.identity for p in self.parts))
        attack = "" if self.attack is None or not self.threat.attacked else self.attack.key
        return f"{self.defense}|{self.threat}|{attack}"


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset, range)):
        return list(value)
    return [value]


def expand(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[Case]:
    """Turn ``@pytest.mark.hac(...)`` arguments into the list of cases, ids included.

    ``defaults`` supplies ``attack``, ``eps``, ``eps_l2``, ``steps`` and ``queries`` (from options
    and ini) for markers that do not name them. Clean cells do not depend on the attack, so they
    appear once per defense. A cell id names the defense, the threat and the attack with every
    parameter that differs from the defaults (:data:`ID_PARAMS`); thresholds are resolved last
    (:func:`resolve_thresholds`).
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
    named = [Threat.of(t) for t in _as_list(kwargs.get("threats", [Threat.CLEAN, Threat.OBLIVIOUS]))]
    worst = Threat.WORST in named or (isinstance(thresholds, Mapping) and Threat.WORST in thresholds)
    threats = list(dict.fromkeys(t for t in named if t is not Threat.WORST))
    thorough = _thorough(kwargs.get("soundness"))
    specs = _attack_specs(kwargs, defaults, threats)
    query_specs = _query_specs(specs, kwargs, defaults) if any(t.info.queries for t in threats) else []
    ids = attack_ids(list(dict.fromkeys(specs + query_specs)), defaults)

    cases: list[Case] = []
    for name, qualities in codecs.items():
        codec = CODECS.canonical(name)
        qs = [validate_quality(codec, q) for q in (_as_list(qualities) or [None])]
        for q in qs:
            for r in ([1] if codec == "identity" else rounds):
                defense: list[Case] = []
                for threat in threats:
                    for spec in (query_specs if threat.info.queries else specs) if threat.attacked else [None]:
                        check_eot(spec, threat, codec)
                        parts = [codec] + ([f"q{q}"] if q is not None else []) + [f"r{r}", threat]
                        if spec is not None:
                            parts.append(ids[spec])
                        case = Case(codec, q, r, threat, spec, None, "-".join(parts), thorough=thorough)
                        if case not in defense:  # eps=["4/255", "4/255"] is one cell
                            defense.append(case)
                cases += defense
                if worst:
                    cases += _worst_cases(defense)
    check_unique([("this marker", c) for c in cases])
    return resolve_thresholds(thresholds, cases)


def check_unique(cells: list[tuple[str, Case]]) -> None:
    """Two different measurements under one id would overwrite each other in reports: a usage error
    naming both tests (``cells`` pairs each case with the test it came from)."""
    seen: dict[str, tuple[str, Case]] = {}
    for test, case in cells:
        other_test, other = seen.setdefault(case.id, (test, case))
        if other.identity != case.identity:
            raise HacError(f"two different cells share the id {case.id!r}: {other.identity} in {other_test} and "
                           f"{case.identity} in {test}; the report would keep one of them. Give the attacks "
                           f"different parameters in one marker, or set them explicitly so the ids name them")


def _worst_cases(defense: list[Case]) -> list[Case]:
    """The defense's worst case per image, one per eps: its clean cell and every attacked cell at that
    eps (minimum-norm attacks, which have no budget, left out). The id names the eps when the marker has
    several, or one that is not the run's default."""
    attacked = [c for c in defense if c.attack is not None and c.threat.attacked and not c.attack.min_norm]
    if not attacked:
        first = defense[0].defense if defense else "the defense"
        raise HacError(f"the worst case of {first} needs at least one attacked cell (threats "
                       f"{', '.join(t for t in Threat if t.attacked)})")
    clean = [c for c in defense if c.threat is Threat.CLEAN]
    budgets = list(dict.fromkeys(c.attack.eps for c in attacked))
    out = []
    for eps in budgets:
        parts = tuple(clean + [c for c in attacked if c.attack.eps == eps])
        label = "eps" + next(c.attack for c in attacked if c.attack.eps == eps).eps_label.replace("/255", "")
        named = len(budgets) > 1 or any(f"-{label}" in c.id for c in parts)
        case_id = f"{parts[0].defense}-{Threat.WORST}" + (f"-{label}" if named else "")
        out.append(Case(parts[0].codec, parts[0].quality, parts[0].rounds, Threat.WORST, None, None, case_id,
                        parts=parts))
    return out


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


def _attack_specs(kwargs: Mapping[str, Any], defaults: Mapping[str, Any], threats: list[Threat]) -> list[AttackSpec]:
    """The marker's attacks x eps values, each with the parameters it takes."""
    names = _attack_names(kwargs, defaults)
    infos = {n: attack_info(n) for n in names}
    bounded = [n for n in names if not infos[n].min_norm]
    eps_values = _as_list(kwargs["eps"]) if "eps" in kwargs else None
    if "eps" in kwargs and not bounded:
        make_spec(names[0], kwargs["eps"])  # raises: says the attack has no eps
    if bounded and eps_values == []:
        raise HacError("hac marker: eps must not be empty")
    for param in SHARED_PARAMS:
        if kwargs.get(param) is not None and not any(_takes(infos[n], param) for n in names):
            # make_spec's message names the attack, the parameter and what to use instead
            eps = None if infos[names[0]].min_norm else (eps_values or [_default_eps(names[0], infos[names[0]],
                                                                                     defaults)])[0]
            make_spec(names[0], eps, **{param: kwargs[param]})
            raise HacError(f"hac marker: no attack of {names} takes {param}; drop it")  # pragma: no cover
    queries = kwargs.get("queries")
    if queries is not None and not any(t.info.queries for t in threats) and not any(
            i.gradient_free for i in infos.values()):
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
                warnings.warn(BudgetWarning(f"hac marker: {why}"), stacklevel=2)
            specs.append(spec)
    return specs


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
    kw: dict[str, Any] = {k: kwargs[k] for k in ("restarts", "eot") if kwargs.get(k) is not None}
    for param in SHARED_PARAMS:
        value = kwargs.get(param)
        if value is None and param == "steps" and not info.gradient_free:
            value = defaults.get("steps")  # --hac-steps counts gradient steps, not queries
        if value is not None and _takes(info, param) and not (info.gradient_free and kwargs.get("queries")):
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


def check_eot(spec: AttackSpec | None, threat: Threat, codec: str, *, stochastic: bool | None = None) -> None:
    """EOT averages gradients over a random defense: refused where every sample gives one gradient.

    At collection (``stochastic`` unknown) for cells that attack the bare, deterministic model; once
    the codec is built, also for a codec that is not stochastic. The error names codec, attack and fix.
    """
    if spec is None or spec.eot == 1 or not threat.attacked or threat.info.queries:
        return
    if "bare" in threat.info.paths or codec == "identity":
        raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but the "
                       f"{threat} cells of codec {codec!r} attack the bare, deterministic model; give eot in a marker "
                       f"whose threats are whitebox/adaptive on a stochastic codec")
    if stochastic is False:
        raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but codec "
                       f"{codec!r} is deterministic (its stochastic flag is False): every sample gives the same "
                       f"gradient at {spec.eot}x the cost; drop eot, or mark a codec that really is random with "
                       f"stochastic = True")


def parse_fraction(value: Any, where: str) -> float:
    """A threshold: a number (or a numeric string such as "0.9") in [0, 1]."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise HacError(f"{where}: threshold {value!r} is not a number; write a fraction such as 0.9") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise HacError(f"{where}: thresholds are fractions in [0, 1]; got {value!r}")
    return float(value)


def _literal(pattern: str) -> int:
    """How specific a glob is: its characters that are not wildcards."""
    return sum(1 for ch in pattern if ch not in "*?[]")


def resolve_thresholds(spec: Any, cases: list[Case]) -> list[Case]:
    """The marker's ``min_accuracy`` on each of its cells: one number, or a dict whose keys are cell ids,
    id patterns (globs), threats the marker runs or ``worst``.

    The most specific key wins: an exact cell id, then the pattern with the most literal characters,
    then the threat, then a plain number. A key that is none of these (a typo, a threat the marker does
    not run, a pattern that matches no cell) is a usage error naming what it could have meant. A
    minimum-norm attack's cell (cw) has no eps budget: only its exact id gates it.
    """
    if spec is None:
        return cases
    if not isinstance(spec, Mapping):
        value = parse_fraction(spec, "hac marker min_accuracy")
        return [c if _min_norm(c) else _with_threshold(c, value) for c in cases]
    ids = {c.id for c in cases}
    threats = {c.threat for c in cases}
    exact, by_threat, patterns = {}, {}, {}
    for key, raw in spec.items():
        value = parse_fraction(raw, f"hac marker min_accuracy[{key!r}]")
        if not isinstance(key, str):
            raise HacError(f"hac marker min_accuracy: keys are cell ids, patterns or threats; got {key!r}")
        if key in ids:
            exact[key] = value
        elif key in threats:
            by_threat[key] = value
        elif key in {t.value for t in Threat}:
            raise HacError(f"hac marker min_accuracy[{key!r}]: the marker runs no {key!r} cells (its threats: "
                           f"{', '.join(sorted(threats))}); add {key!r} to threats= or drop the key")
        elif any(_reaches(key, c) for c in cases):
            patterns[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(ids | threats), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise HacError(f"hac marker min_accuracy[{key!r}] matches no cell of the marker and is no threat it "
                           f"runs.{hint} Keys are cell ids (e.g. {sorted(ids)[0]!r}), glob patterns over them, or "
                           f"threats ({', '.join(sorted(threats))}); a pattern reaches a minimum-norm (cw) cell only "
                           f"when it names the attack")
    out = []
    for case in cases:
        value = exact.get(case.id)
        if value is None:
            matching = [(p, v) for p, v in patterns.items() if _reaches(p, case)]
            if matching:
                value = max(matching, key=lambda pv: _literal(pv[0]))[1]  # ties: the first written
            elif not _min_norm(case):
                value = by_threat.get(case.threat)
        out.append(case if value is None else _with_threshold(case, value))
    return out


def _reaches(pattern: str, case: Case) -> bool:
    """A glob gates a minimum-norm cell only when it names the attack: its accuracy has no eps budget."""
    if _min_norm(case) and case.attack.name not in pattern:
        return False
    return fnmatch.fnmatchcase(case.id, pattern)


def _min_norm(case: Case) -> bool:
    return case.attack is not None and case.attack.min_norm and case.threat.attacked


def _with_threshold(case: Case, value: float) -> Case:
    return replace(case, threshold=value)
