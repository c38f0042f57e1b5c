"""A hypothesis sweep: random valid and invalid configurations through the option parser and the engine.

Whatever comes in, the only failure allowed is a usage error (HacError) with a message; every result
lies in [0, 1] and its confidence interval contains its own estimate. Kept small (tiny-cnn on six
digits, attacks of 1-2 steps, JPEG) so the sweep runs in well under a minute.
"""
import json
import math
import os
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hac.attacks import Threat
from pytest_hac.core.cells.cases import expand
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.judge.result import GATE_RULES
from pytest_hac.data import load_dataset
from pytest_hac.errors import HacError
from pytest_hac.settings import OPTIONS, Settings, settings_from

SWEEP = settings(max_examples=300, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ENGINE_SWEEP = settings(max_examples=60, deadline=None, derandomize=True,
                        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

junk = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10)
any_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-3, 2**65).map(str),
                       st.builds(lambda a, b: f"{a}/{b}", st.integers(-2, 300), st.integers(0, 3)))
flags = st.sampled_from(["true", "false", "1", "0", "yes", "off", "TRUE", ""])
paths = st.sampled_from(["reports", "out/nested", "/tmp/hac-sweep"])

#: Values a user might well mean (most of them valid), by option.
PLAUSIBLE = {
    "model": st.sampled_from(["tiny-cnn", "Tiny-CNN", " tiny-vit ", "efficientnet-lite0", "vit", "timm:resnet18",
                              "pkg.mod:build", "model.pt"]),
    "data": st.sampled_from(["embedded", "digits", "/data/val"]),
    "device": st.sampled_from(["auto", "cpu", "CPU"]),
    "samples": st.integers(1, 10**6).map(str),
    "seed": st.integers(0, 2**63 - 1).map(str),
    "batch_size": st.one_of(st.sampled_from(["auto", "AUTO"]), st.integers(1, 1024).map(str)),
    "attack": st.sampled_from(["pgd", "PGD", "fgsm", "bim", "pgd-l2", "apgd", "cw", "square", "autoattack"]),
    "eps": st.one_of(st.integers(0, 255).map(lambda k: f"{k}/255"), st.floats(0, 1).map(repr)),
    "steps": st.one_of(st.integers(1, 1000).map(str), st.integers(1, 1000).map(lambda n: f"10,queries={n}")),
    "progress": st.sampled_from(["auto", "off", "5", "0.5"]),
    "strictness": st.sampled_from(["lenient", "normal", "strict"]),
    "input_size": st.sampled_from(["224", "224,resize=256", "resize=64"]),
    "gate": st.sampled_from(list(GATE_RULES)),
    "weights_dir": st.sampled_from(["."]),
    "cache_mb": st.integers(0, 10**5).map(str),
    "thresholds": st.none(),
    "fail_drop": st.floats(0, 50).map(repr),
    "history": st.sampled_from(["history"]),
    "shard": st.sampled_from(["1/1", "1/2", "2/2", "3/4"]),
}
BY_KIND = {"int": st.integers(0, 100).map(str), "float": st.floats(0, 10).map(repr), "bool": flags,
           "optional": st.one_of(flags, st.sampled_from(["nightly", "v1.2"])), "path": paths,
           "str": st.sampled_from(["x"])}
#: Values that must be refused (or, for free-form options, may be accepted), by option.
RUBBISH = st.one_of(junk, any_number, st.sampled_from(["cuda:7", "tpu", "1/0", "0/2", "-1", "nan", "inf", "maybe",
                                                       "/no/such/thing", "resnet5", "pgdd", "\x00"]))


@st.composite
def raw_values(draw):
    """Every option not given or plausible; in two examples of three, one option set to rubbish."""
    values = {opt.name: draw(st.one_of(st.none(), PLAUSIBLE.get(opt.name, BY_KIND[opt.kind]))) for opt in OPTIONS}
    if draw(st.integers(0, 2)):
        values[draw(st.sampled_from([opt.name for opt in OPTIONS]))] = draw(RUBBISH)
    return values


@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("HAC_"):
            monkeypatch.delenv(key)


@SWEEP
@given(values=raw_values())
def test_option_parser_accepts_or_explains(clean_env, values):
    try:
        s = settings_from(lambda opt: values.get(opt.name))
    except HacError as exc:
        assert str(exc).strip()  # a message that says what to fix, never an empty one
        return
    assert isinstance(s, Settings)
    assert s.device == "cpu" or s.device.startswith("cuda")
    assert s.samples is None or s.samples >= 1
    assert all(n is None or n >= 1 for n in s.steps)
    assert s.batch_size == "auto" or (isinstance(s.batch_size, int) and s.batch_size >= 1)
    assert 0 <= s.seed < 2**63 and s.cache_mb >= 0 and s.gate in GATE_RULES
    assert math.isfinite(s.eps.linf) and 0 <= s.eps.linf and (s.eps.linf <= 1 or s.attack in ("pgdl2", "cw"))
    assert s.fail_drop is None or (math.isfinite(s.fail_drop) and s.fail_drop >= 0)
    assert s.shard is None or 1 <= s.shard[0] <= s.shard[1]


@lru_cache(maxsize=1)
def tiny():
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    model = get_model("tiny-cnn")
    data = load_dataset("digits", resize=32, crop=32, samples=6)
    return model, data


GOOD_MARKER = {
    "codecs": st.one_of(st.builds(lambda qs: {"jpeg": qs}, st.lists(st.integers(1, 100), min_size=1, max_size=2)),
                        st.just({"identity": []})),
    "rounds": st.lists(st.integers(1, 2), min_size=1, max_size=2),
    "threats": st.lists(st.sampled_from([name for t in Threat if not t.info.combines
                                         for name in (t.value, *t.info.aliases)]), min_size=1, max_size=3),
    "attack": st.sampled_from(["fgsm", "pgd", "ifgsm", "apgd", "square", "pgdl2"]),
    "eps": st.one_of(st.floats(0, 16 / 255), st.sampled_from(["4/255", "8/255", "0"])),
    "steps": st.integers(1, 2),
    "min_accuracy": st.one_of(st.none(), st.floats(0, 1)),
}
BAD_MARKER = {
    "codecs": st.sampled_from([{"jpeg": [0]}, {"jpeg": [101]}, {"jpeg": [50.5]}, {"jpg": [50]}, {"identity": [3]},
                               {}, "jpeg"]),
    "rounds": st.sampled_from([[0], [-1], [1, 0]]),
    "threats": st.sampled_from([["whitebx"], [""], ["clean", "oblivous"]]),
    "attack": st.sampled_from(["pgdd", "", "PGD "]),
    "eps": st.sampled_from([-0.1, 1.5, float("nan"), float("inf"), "1/0", "four", True]),
    "steps": st.sampled_from([0, -1]),
    "min_accuracy": st.sampled_from([-0.1, 1.5, {"clean": 2}]),
}


@st.composite
def markers(draw):
    """A marker's arguments, valid in one example of two, otherwise with one argument wrong."""
    marker = {key: draw(strategy) for key, strategy in GOOD_MARKER.items()}
    if marker["attack"] != "square":  # the query threat swaps in Square at its own 100 queries: too slow here
        marker["threats"] = [t for t in marker["threats"] if t not in ("query", "gradient-free")] or ["clean"]
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(BAD_MARKER)))
        marker[key] = draw(BAD_MARKER[key])
    return marker


@pytest.mark.filterwarnings("ignore::pytest_hac.errors.BudgetWarning")  # tiny eps draws are meant; tested apart
@ENGINE_SWEEP
@given(marker=markers(), samples=st.one_of(st.none(), st.integers(1, 6), st.integers(-1, 8)),
       seed=st.integers(0, 2**32))
def test_engine_results_are_fractions_inside_their_intervals(marker, samples, seed):
    model, _ = tiny()
    try:
        data = load_dataset("digits", resize=32, crop=32, samples=6 if samples is None else samples, seed=seed)
        cases = expand(marker, {})
    except HacError as exc:
        assert str(exc).strip()
        return
    engine = Engine(model, data, seed=seed)
    for case in cases[:3]:
        try:
            r = engine.evaluate(case)
        except HacError as exc:  # allowed, but it must explain itself
            assert str(exc).strip()
            continue
        assert r.n == len(data) == len(r.correct)
        assert 0 <= r.ci_low <= r.accuracy <= r.ci_high <= 1
        assert r.accuracy == sum(r.correct) / r.n
        assert (r.bpp is None) == (case.codec == "identity") and (r.bpp is None or r.bpp > 0)
        json.dumps(r.to_dict(), allow_nan=False)  # the report never holds NaN or inf
        # the lenient rule is never stricter than the point rule, the confident rule never more lenient
        for threshold in {case.threshold, r.accuracy, r.ci_low, r.ci_high, 0.5} - {None}:
            lenient, point, confident = (r.gate(threshold, rule=rule) for rule in ("lenient", "point", "confident"))
            assert lenient >= point >= confident
        assert r.gate(r.accuracy, rule="point") and r.gate(r.ci_low, rule="confident")  # each rule meets its own end
