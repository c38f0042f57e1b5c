"""The marker becomes one typed, frozen value; the attack parameters are declared once and everything that lists
them is derived from that declaration; following a marker argument never climbs back from attacks/ into core/."""
import dataclasses
import importlib.util
import inspect
from pathlib import Path

import pytest

from pytest_hac.attacks import AttackSpec, Threat, make_spec
from pytest_hac.attacks.marker import EVERY, SHARED
from pytest_hac.attacks.params import PARAMS
from pytest_hac.core.cells.cases import MARKER_KEYS, MarkerSpec, expand, parse_marker
from pytest_hac.core.cells.cell_ids import ID_PARAMS
from pytest_hac.errors import HacError

WALK = Path(__file__).resolve().parents[2] / "scripts" / "marker_walk.py"


def test_the_parameter_names_are_the_specs_fields_and_make_specs_keywords():
    names = [p.name for p in PARAMS]
    assert [n for n in inspect.signature(make_spec).parameters if n != "name"] == \
        ["eps", "steps", "alpha", "restarts", "eot", "queries", "norm"]
    assert set(inspect.signature(make_spec).parameters) - {"name"} == set(names)
    fields = {f.name for f in dataclasses.fields(AttackSpec)} - {"name", "gradient_free"}
    assert fields == set(names) - {"queries"} and isinstance(AttackSpec.queries, property)


def test_ids_keys_and_sharing_are_derived_from_the_declaration():
    assert ID_PARAMS == ("eps", "norm", "steps", "alpha", "restarts", "eot")
    assert {"eps", "steps", "alpha", "restarts", "eot", "queries"} <= MARKER_KEYS and "norm" not in MARKER_KEYS
    assert [p.name for p in SHARED] == ["steps", "alpha"] and [p.name for p in EVERY] == ["restarts", "eot"]
    spec = make_spec("pgd", "8/255", steps=7, alpha="2/255", restarts=2, eot=3)
    assert spec.key == "pgd,Linf,eps=0.0313725,steps=7,alpha=0.00784314,restarts=2,eot=3"
    assert spec.describe() == "pgd Linf eps=8/255 steps=7 alpha=0.007843 restarts=2 eot=3"
    assert list(spec.as_dict()) == ["name", *(p.name for p in PARAMS), "min_norm"]
    square = make_spec("square", "4/255", queries=300)
    assert square.key == "square,Linf,eps=0.0156863,queries=300"
    assert square.describe() == "square Linf eps=4/255 steps=300 restarts=1 eot=1 queries=300"
    assert make_spec("cw").describe().startswith("cw L2 minimum-norm steps=")


def test_the_marker_is_one_frozen_value_that_expand_iterates():
    kwargs = {"codecs": {"jpeg": [50, 75], "identity": []}, "rounds": [1, 2], "threats": ["clean", "oblivious",
              "query", "worst"], "attack": "pgd", "eps": ["4/255", "8/255"], "steps": 5, "min_accuracy": {"clean": 0.8},
              "soundness": "thorough"}
    marker = parse_marker(kwargs, {"queries": 100})
    assert isinstance(marker, MarkerSpec)
    assert marker.codecs == (("jpeg", (50, 75)), ("identity", (None,)))
    assert marker.rounds == (1, 2) and marker.rounds_of("identity") == (1,)
    assert marker.threats == (Threat.CLEAN, Threat.OBLIVIOUS, Threat.QUERY) and marker.worst and marker.thorough
    assert [s.eps for s in marker.attacks] == [4 / 255, 8 / 255] and {s.steps for s in marker.attacks} == {5}
    assert {s.name for s in marker.query_attacks} == {"square"} and {s.queries for s in marker.query_attacks} == {100}
    assert marker.attacks_of(Threat.CLEAN) == (None,) and marker.attacks_of(Threat.QUERY) == marker.query_attacks
    assert dict(marker.thresholds) == {"clean": 0.8} and not marker.large_eps
    with pytest.raises(dataclasses.FrozenInstanceError):
        marker.rounds = (3,)
    with pytest.raises(TypeError):
        marker.attack_ids[marker.attacks[0]] = "x"
    cases = expand(kwargs, {"queries": 100})
    assert {c.attack for c in cases} - {None} == set(marker.attacks) | set(marker.query_attacks)
    assert {c.id.split("-r")[0] for c in cases} == {"jpeg-q50", "jpeg-q75", "identity"}


def test_every_usage_error_is_raised_while_parsing():
    for kwargs in ({"codecs": {"jpeg": [50]}, "bogus": 1}, {"codecs": {"jpeg": [0]}},
                   {"codecs": {"jpeg": [50]}, "threats": ["clean", "worst"]},
                   {"codecs": {"jpeg": [50]}, "min_accuracy": 2},
                   {"codecs": {"jpeg": [50]}, "attack": "fgsm", "alpha": 1}):
        with pytest.raises(HacError):
            parse_marker(kwargs, {})


def test_a_marker_argument_never_climbs_back_from_attacks_into_core():
    spec = importlib.util.spec_from_file_location("marker_walk", WALK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    walk = module.walk()
    assert walk["climbs back"] == 0
    into_attacks = [c for c in walk["calls"] if c[0].startswith("core") and c[1].startswith("attacks")]
    assert [c[2] for c in into_attacks] == ["attacks.marker.marker_attacks"]
