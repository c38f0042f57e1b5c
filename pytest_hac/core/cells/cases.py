"""Cases (one cell of the robustness matrix) and the expansion of a ``hac`` marker into cases.

The marker's keyword arguments and the run's defaults become one typed, frozen :class:`MarkerSpec`
(:func:`parse_marker`: every usage error is raised there, at collection); :func:`expand` only iterates it.
Its attack parameters are read by :func:`pytest_hac.attacks.marker.marker_attacks` (how each one reaches the
marker's attacks is declared in :data:`pytest_hac.attacks.params.PARAMS`); ``eot`` must also suit every threat
(the bare model of oblivious cells is deterministic).

Options (``defaults``) apply where they fit and are never an error.
"""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ...attacks import AttackSpec, Threat
from ...attacks.marker import as_list, marker_attacks
from ...attacks.params import MARKER_PARAMS
from ...errors import HacError
from ...registry import CODECS, validate_quality
from .cell_ids import attack_ids
from .defense import Defense

MARKER_KEYS = {"codecs", "rounds", "threats", "attack", "soundness", "min_accuracy", "large_eps", *MARKER_PARAMS}
#: Values of the marker's ``soundness`` key (the run-wide modes are options, not marker keys).
MARKER_SOUNDNESS = ("thorough",)
#: The gate rule a case is held to unless the run says otherwise (``--hac-gate``; the rules are
#: :data:`pytest_hac.core.judge.result.GATE_RULES`).
DEFAULT_RULE = "point"


@dataclass(frozen=True)
class Case:
    """One cell: defense (codec, quality, rounds) x threat x attack, with its gate (threshold and rule).

    The one place a cell's threshold and gate rule are held: its :class:`~pytest_hac.core.judge.result.Result`,
    its report record and its verdict read them here. ``thorough`` asks the engine for the extra soundness
    probes (the attack rerun at twice its steps), as ``--hac-soundness=thorough`` does for every cell.
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
    #: How the accuracy is held against the threshold (the run's ``--hac-gate``, set by ``HacRun``): not part of
    #: the cell's identity.
    rule: str = field(default=DEFAULT_RULE, compare=False)

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


@dataclass(frozen=True)
class MarkerSpec:
    """A ``hac`` marker as a typed value: what :func:`expand` iterates, with nothing left to parse."""

    #: Each codec (its registry name) with its qualities (``(None,)``: the codec's only setting).
    codecs: tuple[tuple[str, tuple[int | None, ...]], ...]
    rounds: tuple[int, ...]
    #: The threats the marker runs, ``worst`` aside.
    threats: tuple[Threat, ...]
    #: Whether the marker asks for each defense's worst case (``threats`` or ``min_accuracy`` names it).
    worst: bool
    #: The marker's attacks x eps, each with the parameters it takes.
    attacks: tuple[AttackSpec, ...]
    #: The query threat's attacks (empty without the query threat).
    query_attacks: tuple[AttackSpec, ...]
    #: Each attack's part of a cell id (:func:`.cell_ids.attack_ids`).
    attack_ids: Mapping[AttackSpec, str]
    #: ``min_accuracy``: one fraction, or fractions by cell id, id pattern or threat (resolved by
    #: :func:`resolve_thresholds` once the cells' ids are known); None: no gate.
    thresholds: float | Mapping[str, float] | None
    #: ``soundness="thorough"``: the extra soundness probes for every cell of the marker.
    thorough: bool
    #: ``large_eps=True``: L-inf budgets above 32/255 are meant.
    large_eps: bool

    def rounds_of(self, codec: str) -> tuple[int, ...]:
        """The identity codec compresses nothing: one round."""
        return (1,) if codec == "identity" else self.rounds

    def attacks_of(self, threat: Threat) -> tuple[AttackSpec | None, ...]:
        """The attacks of the ``threat`` cells (``(None,)`` for clean cells)."""
        if not threat.attacked:
            return (None,)
        return self.query_attacks if threat.info.queries else self.attacks


def parse_marker(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> MarkerSpec:
    """``@pytest.mark.hac(...)``'s keyword arguments and the run's defaults (``Settings.marker_defaults``:
    ``attack``, ``eps``, ``eps_l2``, ``steps``, ``queries``) as one typed value; every usage error is raised here."""
    unknown = set(kwargs) - MARKER_KEYS
    if unknown:
        raise HacError(f"unknown hac marker argument(s) {sorted(unknown)}; valid: {sorted(MARKER_KEYS)}")
    codecs = kwargs.get("codecs", {"identity": [None]})
    if isinstance(codecs, str):
        codecs = {codecs: [None]}
    if not isinstance(codecs, Mapping) or not codecs:
        raise HacError("hac marker: codecs must be a dict like {'jpeg': [25, 50]}")
    rounds = tuple(int(r) for r in as_list(kwargs.get("rounds", 1))) or (1,)
    bad = [r for r in rounds if r < 1]
    if bad:
        raise HacError(f"rounds must be >= 1 (1 = compress once); got {bad}")
    thresholds = kwargs.get("min_accuracy")
    named = [Threat.of(t) for t in as_list(kwargs.get("threats", [Threat.CLEAN, Threat.OBLIVIOUS]))]
    worst = Threat.WORST in named or (isinstance(thresholds, Mapping) and Threat.WORST in thresholds)
    threats = tuple(dict.fromkeys(t for t in named if t is not Threat.WORST))
    thorough = _thorough(kwargs.get("soundness"))
    attacks = marker_attacks(kwargs, defaults, queried=any(t.info.queries for t in threats))
    ids = attack_ids(dict.fromkeys(attacks.attacks + attacks.query_attacks), dict(attacks.references))
    validated = []
    for name, qualities in codecs.items():
        codec = CODECS.canonical(name)
        validated.append((codec, tuple(validate_quality(codec, q) for q in (as_list(qualities) or [None]))))
    marker = MarkerSpec(tuple(validated), rounds, threats, worst, attacks.attacks, attacks.query_attacks,
                        MappingProxyType(ids), _fractions(thresholds), thorough, attacks.large_eps)
    for codec, _ in marker.codecs:
        for threat in marker.threats:
            for spec in marker.attacks_of(threat):
                check_eot(spec, threat, codec)
    if marker.worst:
        _check_worst(marker)
    return marker


def _fractions(spec: Any) -> float | Mapping[str, float] | None:
    """``min_accuracy``'s values as fractions (its keys are resolved against the cells' ids)."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        return parse_fraction(spec, "hac marker min_accuracy")
    out = {}
    for key, raw in spec.items():
        value = parse_fraction(raw, f"hac marker min_accuracy[{key!r}]")
        if not isinstance(key, str):
            raise HacError(f"hac marker min_accuracy: keys are cell ids, patterns or threats; got {key!r}")
        out[key] = value
    return MappingProxyType(out)


def expand(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[Case]:
    """Turn ``@pytest.mark.hac(...)`` arguments into the list of cases, ids included.

    The arguments become a :class:`MarkerSpec` (:func:`parse_marker`). Clean cells do not depend on the attack,
    so they appear once per defense. A cell id names the defense, the threat and the attack with every
    parameter that differs from the defaults (:data:`~.cell_ids.ID_PARAMS`); thresholds are resolved last
    (:func:`resolve_thresholds`).
    """
    marker = parse_marker(kwargs, defaults)
    cases: list[Case] = []
    for codec, qualities in marker.codecs:
        for q in qualities:
            for r in marker.rounds_of(codec):
                defense: list[Case] = []
                for threat in marker.threats:
                    for spec in marker.attacks_of(threat):
                        parts = [codec] + ([f"q{q}"] if q is not None else []) + [f"r{r}", threat]
                        if spec is not None:
                            parts.append(marker.attack_ids[spec])
                        case = Case(codec, q, r, threat, spec, None, "-".join(parts), thorough=marker.thorough)
                        if case not in defense:  # eps=["4/255", "4/255"] is one cell
                            defense.append(case)
                cases += defense
                if marker.worst:
                    cases += _worst_cases(defense)
    check_unique([("this marker", c) for c in cases])
    return resolve_thresholds(marker.thresholds, cases)


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


def _check_worst(marker: MarkerSpec) -> None:
    """A worst case combines a defense's attacked cells with an eps budget: a marker without any is an error."""
    if any(s is not None and not s.min_norm for t in marker.threats for s in marker.attacks_of(t)):
        return
    codec, qualities = marker.codecs[0]
    first = Defense(codec, qualities[0], marker.rounds_of(codec)[0]) if marker.threats else "the defense"
    raise HacError(f"the worst case of {first} needs at least one attacked cell (threats "
                   f"{', '.join(t for t in Threat if t.attacked)})")


def _worst_cases(defense: list[Case]) -> list[Case]:
    """The defense's worst case per image, one per eps: its clean cell and every attacked cell at that
    eps (minimum-norm attacks, which have no budget, left out; :func:`_check_worst` made sure there is one).
    The id names the eps when the marker has several, or one that is not the run's default."""
    attacked = [c for c in defense if c.attack is not None and c.threat.attacked and not c.attack.min_norm]
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


def resolve_thresholds(spec: float | Mapping[str, float] | None, cases: list[Case]) -> list[Case]:
    """The marker's ``min_accuracy`` (:attr:`MarkerSpec.thresholds`) on each of its cells: one fraction, or
    fractions whose keys are cell ids, id patterns (globs), threats the marker runs or ``worst``.

    The most specific key wins: an exact cell id, then the pattern with the most literal characters,
    then the threat, then a plain number. A key that is none of these (a typo, a threat the marker does
    not run, a pattern that matches no cell) is a usage error naming what it could have meant. A
    minimum-norm attack's cell (cw) has no eps budget: only its exact id gates it.
    """
    if spec is None:
        return cases
    if not isinstance(spec, Mapping):
        return [c if _min_norm(c) else _with_threshold(c, spec) for c in cases]
    ids = {c.id for c in cases}
    threats = {c.threat for c in cases}
    exact, by_threat, patterns = {}, {}, {}
    for key, value in spec.items():
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
