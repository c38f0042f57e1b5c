"""Gate rules on a result: point, lenient and confident, and what a failure says."""
import pytest

from pytest_hac.attacks import AttackSpec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.judge.result import Result


def result(k: int, n: int, threshold=None) -> Result:
    case = Case("jpeg", 50, 1, "oblivious", AttackSpec("pgd", 4 / 255), threshold, "jpeg-q50-r1-oblivious-pgd")
    return Result.from_correct([True] * k + [False] * (n - k), case, bpp=1.0, psnr=30.0, seconds=0.1)


def test_the_default_gate_fails_a_measured_accuracy_below_its_threshold():
    r = result(8, 20)  # 0.40, 95% CI about [0.22, 0.61]: the interval reaches 0.6, the estimate does not
    with pytest.raises(AssertionError):
        r.assert_at_least(0.6)  # the default rule compares the measured accuracy
    with pytest.raises(AssertionError):
        r.assert_at_least(0.6, rule="point")
    assert r.rule == "point"


def test_the_opt_in_rules_use_the_interval_each_way():
    r = result(9, 20)  # 0.45, CI about [0.26, 0.66]
    r.assert_at_least(0.5, rule="lenient")  # benefit of the doubt: the upper end reaches 0.5
    with pytest.raises(AssertionError):
        r.assert_at_least(0.3, rule="confident")  # a claim needs the lower end (0.26) to reach it
    r.assert_at_least(0.25, rule="confident")
    r.assert_at_least(0.45)  # the estimate itself reaches 0.45


def test_gate_failure_names_numbers_rule_and_threshold_as_given():
    from pytest_hac.core.judge.result import GateFailure

    r = result(20, 200)  # 0.10, CI about [0.07, 0.15]
    with pytest.raises(GateFailure) as info:
        r.assert_at_least(0.999)
    message = str(info.value)
    assert "accuracy 0.100" in message and "95% CI 0.066-0.149" in message and "threshold 0.999" in message
    assert "n=200" in message and "[gate rule point:" in message
    assert info.value.threshold == 0.999 and info.value.rule == "point"


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="point, lenient, confident"):
        result(1, 2).gate(0.5, rule="ci")


def test_no_threshold_means_measure_only():
    result(0, 20).assert_at_least(None)
