"""Confidence intervals and tests for accuracies measured on a finite set of images."""
from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054
SIGNIFICANCE_LEVEL = 0.05


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0, 1 and small n)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Rounding can push an end a hair past the estimate at p = 0 or 1.
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def mcnemar_drop_pvalue(before: Sequence[bool], after: Sequence[bool]) -> float:
    """One-sided exact McNemar p-value that ``after`` is worse than ``before`` on the same images.

    Only discordant images count: b = right before and wrong after, c = the reverse.
    Under no change, b ~ Binomial(b + c, 1/2).
    """
    if len(before) != len(after):
        raise ValueError("paired test needs the same images in both runs")
    b = sum(1 for x, y in zip(before, after) if x and not y)
    c = sum(1 for x, y in zip(before, after) if y and not x)
    m = b + c
    if m == 0:
        return 1.0
    return sum(math.comb(m, k) for k in range(b, m + 1)) / 2**m


def two_proportion_drop_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p-value that proportion 2 is lower than proportion 1 (independent samples)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if k2 / n2 >= k1 / n1 else 0.0
    return _normal_sf((k1 / n1 - k2 / n2) / se)
