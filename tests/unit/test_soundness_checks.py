"""The soundness checks on synthetic results: each catches the weak evaluation it is for, and only that."""
import pytest


def _result(case_id, threat, correct, eps=4 / 255, attack="pgd", codec="jpeg", **params):
    from pytest_hac.attacks import AttackSpec
    from pytest_hac.core.cells.cases import Case
    from pytest_hac.core.judge.diagnostics import Diagnostics
    from pytest_hac.core.judge.result import Result

    diagnostics = Diagnostics.from_dict(params.pop("diagnostics", {}))
    queries = params.pop("queries", None)  # a gradient-free attack's steps are its queries
    spec = None if threat == "clean" else AttackSpec(attack, eps, "Linf", **{"steps": queries or 10, **params},
                                                     gradient_free=queries is not None)
    case = Case(codec, 50 if codec == "jpeg" else None, 1, threat, spec, id=case_id)
    return Result.from_correct(correct, case, bpp=1.0, psnr=30.0, seconds=0.0, diagnostics=diagnostics,
                               ids=[str(i) for i in range(len(correct))])


def test_soundness_checks_on_synthetic_results():
    from pytest_hac.core.judge.soundness import check

    n = 40
    good, bad = [True] * n, [False] * n
    results = [
        _result("c", "clean", good),
        _result("o4", "oblivious", [True] * 10 + [False] * 30),
        _result("o8", "oblivious", good, eps=8 / 255),  # more eps, more accuracy: not converging
        _result("w4", "whitebox", good),  # informed attacker weaker: masking
        _result("q4", "query", bad, attack="square", queries=5000),  # gradient-free beats gradient: masking
        _result("o0", "oblivious", [False] + good[1:], eps=0.0),  # eps 0 changed a prediction
        _result("u8", "oblivious", good, eps=8 / 255, codec="identity"),  # undefended model survives large eps
    ]
    found = check(results)
    assert {f.check for f in found} == {"eps0-equals-clean", "monotone-in-eps", "informed-not-weaker",
                                       "gradient-free-not-stronger", "undefended-breaks"}
    implicated = {f.check: f.implicated or f.cells for f in found}
    assert implicated["informed-not-weaker"] == ("w4",) and implicated["gradient-free-not-stronger"] == ("w4",)
    honest = [_result("c", "clean", good), _result("o4", "oblivious", [True] * 20 + [False] * 20),
              _result("w4", "whitebox", [True] * 5 + [False] * 35)]
    assert check(honest) == []


def test_an_attack_with_other_parameters_is_no_evidence_of_masking():
    """Checks compare like with like: a 1-step white-box attack beside a 10-step oblivious one says nothing."""
    from pytest_hac.core.judge.soundness import check

    results = [_result("o4", "oblivious", [True] * 5 + [False] * 35),
               _result("w4", "whitebox", [True] * 40, steps=1)]
    assert results[1].spec.steps == 1
    assert check(results) == []
    same = [results[0], _result("w4", "whitebox", [True] * 40)]
    assert [f.check for f in check(same)] == ["informed-not-weaker"]


@pytest.mark.parametrize("check_name, planted, sound", [
    ("large-eps-through-defense", {"large_eps": {"eps": 64 / 255, "correct": 20, "n": 32}},
     {"large_eps": {"eps": 64 / 255, "correct": 1, "n": 32}}),
    ("gradient-nonzero", {"zero_gradient": {"images": 3, "of": 40}}, {"zero_gradient": {"images": 0, "of": 40}}),
    ("undefended-breaks", {"undefended_large_eps": {"eps": 64 / 255, "correct": 30, "n": 40}},
     {"undefended_large_eps": {"eps": 64 / 255, "correct": 0, "n": 40}}),
    ("steps-convergence", {"steps_2x": {"steps": 20, "correct": [False] * 30 + [True] * 10}},
     {"steps_2x": {"steps": 20, "correct": [True] * 29 + [False] + [True] * 10}}),
])
def test_checks_on_what_the_engine_measured(check_name, planted, sound):
    from pytest_hac.core.judge.soundness import check, status

    correct = [True] * 30 + [False] * 10
    broken = _result("w4", "whitebox", correct, diagnostics=planted)
    fine = _result("w4", "whitebox", correct, diagnostics=sound)
    assert [f.check for f in check([broken])] == [check_name]
    assert check([fine]) == []
    assert status([fine])[check_name] == "ok" and status([broken])[check_name] == "flagged"


def test_a_weak_query_budget_is_flagged():
    from pytest_hac.core.judge.soundness import check

    weak = _result("q4", "query", [True] * 10, attack="square", queries=100)
    strong = _result("q4", "query", [True] * 10, attack="square", queries=5000)
    assert [f.check for f in check([weak])] == ["query-budget"]
    assert check([strong]) == []


def test_checks_with_nothing_to_check_say_so():
    from pytest_hac.core.judge.soundness import status

    states = status([_result("c", "clean", [True] * 4), _result("o4", "oblivious", [True] * 4)])
    assert states["eps0-equals-clean"] == "not run: no eps-0 cell beside a clean cell"
    assert states["gradient-free-not-stronger"].startswith("not run: no query cell")
    assert states["undefended-breaks"].startswith("not run")  # no probe measured, no large-eps identity cell
    assert "ok" not in [states[k] for k in ("eps0-equals-clean", "query-budget", "steps-convergence")]


def test_worst_case_counts_an_image_only_if_it_survives_everything():
    from pytest_hac.core.judge.soundness import worst_case

    clean = _result("c", "clean", [True, True, True, False])
    a = _result("o4", "oblivious", [True, False, True, True])
    b = _result("w4", "whitebox", [True, True, False, True])
    (row,) = worst_case([clean, a, b])
    assert row.correct == (True, False, False, False) and row.case_id == "jpeg-q50-r1-worst"
    assert row.accuracy == 0.25 and row.accuracy <= min(r.accuracy for r in (clean, a, b))
