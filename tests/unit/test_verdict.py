"""The one verdict function, the marker's thresholds and cell identity (issue: a verdict decided once)."""
from dataclasses import replace

import pytest

from pytest_hac.attacks import AttackSpec
from pytest_hac.core.cells.cases import Case, check_unique, expand
from pytest_hac.core.cells.dependencies import dependencies
from pytest_hac.core.judge.comparison import compare
from pytest_hac.core.judge.diagnostics import Diagnostics, LargeEpsProbe
from pytest_hac.core.judge.result import Result
from pytest_hac.core.judge.soundness import Finding, check
from pytest_hac.core.judge.verdict import Reason, ReasonKind, Status, decide
from pytest_hac.errors import HacError


def result(correct, case_id="jpeg-q50-r1-clean", threat="clean", spec=None, threshold=None, **kw) -> Result:
    fields = dict(bpp=1.0, psnr=30.0, seconds=0.0, ids=[f"i{k}" for k in range(len(correct))])
    fields.update(kw)
    return Result.from_correct(list(correct), Case("jpeg", 50, 1, threat, spec, threshold, case_id), **fields)


# --- decide -------------------------------------------------------------------------------------------


def test_the_threshold_decides_whatever_the_body_asserted():
    r = result([1] * 49 + [0], threshold=0.999)  # 0.98
    v = decide(r)
    assert v.status is Status.FAILED and [x.kind for x in v.reasons] == [ReasonKind.THRESHOLD]
    assert "0.980" in v.reasons[0].message and "0.999" in v.reasons[0].message
    assert decide(result([1] * 49 + [0], threshold=0.9)).status is Status.PASSED
    # the body's own stricter assertion adds a reason; the same message is not repeated
    stricter = Reason(ReasonKind.ASSERTION, "x: below 0.99")
    assert decide(result([1] * 49 + [0], threshold=0.9), test_failure=stricter).reasons == (stricter,)


def test_the_gate_is_the_cases_threshold_under_its_rule():
    """The threshold and the rule are held once, by the case the result holds: decide reads them there."""
    r = result([1] * 7 + [0] * 3, threshold=0.75)  # 0.7, 95% CI about 0.40-0.89
    assert r.threshold == r.case.threshold == 0.75 and r.rule == r.case.rule == "point"
    assert decide(r).status is Status.FAILED
    lenient = replace(r, case=replace(r.case, rule="lenient"))
    assert decide(lenient).status is Status.PASSED
    assert "[gate rule confident:" in decide(replace(r, case=replace(r.case, rule="confident"))).reasons[0].message


def test_a_cell_without_a_gate_is_measured_and_warnings_fail_nothing():
    r = result([0, 0, 0, 1], case_id="c", threat="whitebox")
    assert decide(r).status is Status.MEASURED
    flag = Finding("large-eps-through-defense", ("c",), "masked")
    failed = decide(r, findings=[flag])
    assert failed.status is Status.FAILED and failed.reasons[0].kind is ReasonKind.SOUNDNESS
    warned = decide(r, findings=[flag], soundness="warn")
    assert warned.status is Status.MEASURED and warned.warnings and not warned.reasons
    other = Finding("large-eps-through-defense", ("d",), "masked")
    assert decide(r, findings=[other]).status is Status.MEASURED


# --- the marker's min_accuracy --------------------------------------------------------------------------


def test_the_most_specific_threshold_wins():
    cases = expand({"codecs": {"jpeg": [5, 50]}, "threats": ["clean", "oblivious"],
                    "min_accuracy": {"clean": 0.5, "jpeg-q5-*-clean": 0.999, "jpeg-*": 0.1,
                                     "jpeg-q50-r1-oblivious-pgd": 0.3}}, {})
    assert {c.id: c.threshold for c in cases} == {
        "jpeg-q5-r1-clean": 0.999,           # the longer pattern beats the shorter one and the threat key
        "jpeg-q5-r1-oblivious-pgd": 0.1,
        "jpeg-q50-r1-clean": 0.1,            # a matching pattern beats the threat key
        "jpeg-q50-r1-oblivious-pgd": 0.3}    # the exact id beats every pattern


@pytest.mark.parametrize("key, message", [
    ("Clean", "matches no cell of the marker and is no threat it runs. Did you mean 'clean'?"),
    ("jpg-q5-*-clean", "matches no cell"),
    ("whitebox", "the marker runs no 'whitebox' cells (its threats: clean, oblivious)"),
    ("worst", None),  # a worst key makes worst cells: allowed
])
def test_a_threshold_key_that_gates_nothing_is_a_usage_error(key, message):
    kwargs = {"codecs": {"jpeg": [5]}, "threats": ["clean", "oblivious"], "min_accuracy": {key: 0.5}}
    if message is None:
        assert any(c.threat == "worst" and c.threshold == 0.5 for c in expand(kwargs, {}))
        return
    with pytest.raises(HacError, match="min_accuracy") as info:
        expand(kwargs, {})
    assert message in str(info.value)


def test_a_glob_reaches_a_minimum_norm_cell_only_when_it_names_the_attack():
    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": ["pgd", "cw"],
                    "min_accuracy": {"jpeg-*": 0.4}}, {})
    assert {c.id: c.threshold for c in cases} == {"jpeg-q50-r1-oblivious-pgd": 0.4, "jpeg-q50-r1-oblivious-cw": None}


def test_threshold_strings_are_numbers():
    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["clean"], "min_accuracy": "0.9"}, {})
    assert case.threshold == 0.9


# --- cell identity --------------------------------------------------------------------------------------


def test_ids_name_every_attack_parameter_that_differs():
    four = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "eps": "4/255"}, {"eps": 4 / 255})
    eight = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "eps": "8/255"}, {"eps": 4 / 255})
    assert [c.id for c in four] == ["jpeg-q50-r1-oblivious-pgd"]
    assert [c.id for c in eight] == ["jpeg-q50-r1-oblivious-pgd-eps8"]
    square = expand({"codecs": {"jpeg": [50]}, "threats": ["query"], "attack": ["square", "pgd"], "queries": 1500},
                    {})
    assert [c.id for c in square] == ["jpeg-q50-r1-query-square-q1500"]
    mixed = expand({"codecs": {"jpeg": [50]}, "threats": ["query"], "attack": ["square", "pgd"], "queries": 1500,
                    "eps": ["4/255"]}, {"queries": 5000})
    assert [c.id for c in mixed] == ["jpeg-q50-r1-query-square-q1500"]


def test_one_id_for_two_measurements_is_a_usage_error_naming_both_tests():
    a = Case("jpeg", 50, 1, "oblivious", expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"]}, {})[0].attack,
             id="x")
    b = Case("jpeg", 50, 1, "oblivious", expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "eps": "8/255"},
                                                 {})[0].attack, id="x")
    with pytest.raises(HacError, match="test_a.*test_b"):
        check_unique([("test_a", a), ("test_b", b)])
    check_unique([("test_a", a), ("test_b", a)])  # the same cell in two tests is fine


def test_worst_cells_are_per_eps_and_say_it():
    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["clean", "oblivious", "worst"],
                    "eps": ["4/255", "8/255"]}, {})
    worst = {c.id: sorted(p.id for p in c.parts) for c in cases if c.threat == "worst"}
    assert worst == {"jpeg-q50-r1-worst-eps4": ["jpeg-q50-r1-clean", "jpeg-q50-r1-oblivious-pgd-eps4"],
                     "jpeg-q50-r1-worst-eps8": ["jpeg-q50-r1-clean", "jpeg-q50-r1-oblivious-pgd-eps8"]}


# --- parameters that would be dropped are refused ------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"attack": "pgdl2"}, "'pgdl2' is an L2 attack and neither the marker nor --hac-eps's l2= gives its eps"),
    ({"attack": "square", "steps": 300, "queries": 2000}, "its steps are its queries"),
    ({"attack": ["pgd", "square"], "steps": 20}, "give the gradient-free budget as queries="),
])
def test_dropped_parameters_are_refused(kwargs, message):
    with pytest.raises(HacError) as info:
        expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], **kwargs}, {})
    assert message in str(info.value)


def test_l2_attacks_take_their_own_default_eps():
    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": "pgdl2"}, {"eps_l2": 0.5})
    assert case.attack.eps == 0.5 and case.attack.norm == "L2"


# --- what a verdict depends on --------------------------------------------------------------------------


def test_an_informed_cell_depends_on_its_oblivious_twin_and_the_query_cells():
    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["whitebox", "query"]}, {})
    whitebox = next(c for c in cases if c.threat == "whitebox")
    deps = dependencies(whitebox, cases)
    assert [(d.threat, d.id) for d in deps] == [("oblivious", "jpeg-q50-r1-oblivious-pgd"),
                                                ("query", "jpeg-q50-r1-query-square")]
    assert dependencies(next(c for c in cases if c.threat == "query"), cases) == []


def test_large_eps_probe_flags_more_than_a_few_percent_surviving():
    def probe(survivors):
        r = result([0] * 32, case_id="w", threat="whitebox", spec=AttackSpec("pgd", 4 / 255),
                   diagnostics=Diagnostics(large_eps=LargeEpsProbe(64 / 255, survivors, 32)))
        return [f.check for f in check([r])]

    # 6 of 32 surviving passed before (the lower end of the interval was under 10%): masking now
    assert probe(1) == [] and probe(2) == probe(6) == ["large-eps-through-defense"]


def test_a_baseline_on_other_pixels_under_the_same_names_is_not_comparable():
    old, new = result([1, 1, 0, 0]), result([0, 0, 0, 0])
    same = compare(new, [old], 5, hashes=(["a", "b", "c", "d"], ["a", "b", "c", "d"]))
    assert same.comparable and same.delta_points == -50
    other = compare(new, [old], 5, hashes=(["a", "b", "c", "d"], ["A", "B", "C", "D"]))
    assert not other.comparable and "different data" in other.why
