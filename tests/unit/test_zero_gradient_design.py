"""The zero-gradient check's two stages, computed exactly: no weaker than the one stage of 256 images it replaced,
and cheaper on a healthy path. A finding reads "more than 1% of the images judged"; masked images are a
binomial share ``p`` of a path's images."""
from math import comb, floor

import pytest

from pytest_hac.core.engine.probes import ZERO_GRADIENT_FIRST, ZERO_GRADIENT_IMAGES
from pytest_hac.core.judge.soundness import ZERO_GRADIENT_SHARE

ONE_STAGE = 256  # the check before the second stage existed


def pmf(k: int, n: int, p: float) -> float:
    return comb(n, k) * p**k * (1 - p) ** (n - k)


def at_least(k: int, n: int, p: float) -> float:
    return 1.0 - sum(pmf(i, n, p) for i in range(min(k, n + 1)))


def flagged_from(n: int) -> int:
    """The fewest zero-gradient images on ``n`` that the judge flags (a share above ZERO_GRADIENT_SHARE)."""
    return floor(ZERO_GRADIENT_SHARE * n) + 1


def one_stage(p: float) -> float:
    return at_least(flagged_from(ONE_STAGE), ONE_STAGE, p)


def two_stages(p: float) -> float:
    """Flagged: at least one among the first stage's images, and the share on all of them above the limit."""
    first, rest = ZERO_GRADIENT_FIRST, ZERO_GRADIENT_IMAGES - ZERO_GRADIENT_FIRST
    k = flagged_from(ZERO_GRADIENT_IMAGES)
    return sum(pmf(x, first, p) * at_least(k - x, rest, p) for x in range(1, first + 1))


@pytest.mark.parametrize("percent", [1.5, 2, 2.5, 3, 4, 5, 7, 10])
def test_a_masked_share_is_flagged_as_often_as_before(percent):
    assert two_stages(percent / 100) >= one_stage(percent / 100) - 0.002


@pytest.mark.parametrize("percent", [0.05, 0.1, 0.2, 0.3, 0.4, 0.5])
def test_a_tiny_share_is_flagged_no_more_often_than_before(percent):
    assert two_stages(percent / 100) <= one_stage(percent / 100)


def test_a_healthy_path_costs_less_than_before():
    assert ZERO_GRADIENT_FIRST < ONE_STAGE < ZERO_GRADIENT_IMAGES
