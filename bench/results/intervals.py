"""95% intervals, and the distribution-free interval of a median: what a same-run speedup's interval is.

Interleaved timing pairs every backend's round with the reference's round of the same cycle
(bench.results.speedup), and the speedup is the median of those per-cycle ratios. Its interval is the
distribution-free interval of a median from order statistics (the binomial argument: the interval
between the k-th smallest and k-th largest of n values covers the true median with probability
1 - 2 * P[Binomial(n, 1/2) < k]). It assumes only that cycles are independent draws, not that ratios
are normal; with 10 cycles it is (2nd, 9th) at 97.9%. Below 6 cycles no pair of order statistics
reaches 95%: the interval is then (min, max) and its method states the coverage it has. The quality
drift's interval (a paired bootstrap over images) is bench.measure.bootstrap's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import binom

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def width(self) -> float:
        return self.high - self.low


def median_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, unit: str = "per-cycle ratios"
) -> Interval | None:
    """The distribution-free interval of the median of `values` (order statistics); None for fewer than 2."""
    ordered = sorted(float(v) for v in values if math.isfinite(v))
    n = len(ordered)
    if n < 2:
        return None
    # the largest k whose (k-th smallest, k-th largest) still covers the median with `confidence`
    best_k, best_coverage = 1, 1 - 2 * binom.cdf(0, n, 0.5)
    for k in range(2, n // 2 + 1):
        coverage = 1 - 2 * binom.cdf(k - 1, n, 0.5)
        if coverage < confidence:
            break
        best_k, best_coverage = k, coverage
    return Interval(
        ordered[best_k - 1],
        ordered[n - best_k],
        f"order statistics {best_k} and {n - best_k + 1} of {n} {unit} ({best_coverage:.1%} coverage)",
    )
