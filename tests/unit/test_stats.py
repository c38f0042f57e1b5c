"""Statistics: the Wilson interval and the paired test for a drop."""
from hypothesis import given
from hypothesis import strategies as st

from pytest_hac.core.judge.stats import mcnemar_drop_pvalue, two_proportion_drop_pvalue, wilson_interval


@given(n=st.integers(1, 5000), data=st.data())
def test_wilson_interval_contains_its_estimate(n, data):
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_matches_reference_values():
    # Reference: Wilson 95% for 17/20 is (0.640, 0.948); for 0/20 the upper end is 0.161.
    low, high = wilson_interval(17, 20)
    assert (round(low, 3), round(high, 3)) == (0.640, 0.948)
    assert round(wilson_interval(0, 20)[1], 3) == 0.161


def test_paired_test_detects_a_real_drop_and_ignores_swaps():
    before = [True] * 80 + [False] * 20
    after = [False] * 15 + [True] * 65 + [False] * 20  # 15 images lost, none gained
    assert mcnemar_drop_pvalue(before, after) < 0.001
    swapped = [False] * 5 + [True] * 75 + [True] * 5 + [False] * 15  # 5 lost, 5 gained
    assert mcnemar_drop_pvalue(before, swapped) > 0.3
    assert two_proportion_drop_pvalue(80, 100, 65, 100) < 0.05
