"""Is one cell faster than another? Their rounds of the same timing cycles, compared cycle by cycle.

Interleaved timing gives every cell of a group one round per cycle, and samples.parquet keeps each
sample's cycle (`round`). The ratio of two cells' round p50s in one cycle cancels whatever the machine
did in that cycle; over the cycles both counted, the median ratio and its distribution-free 95%
interval (bench.results.intervals) say how much faster one is, and whether that is more than noise:
"faster" only when the interval excludes 1. Where the cells share fewer than `MIN_PAIRED_CYCLES`
cycles (sequential timing, a resumed run), the ratio of their p50s is all there is, and it has no
interval.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.results.intervals import Interval, median_interval
from bench.results.row import IDENTITY_COLUMNS, cell_id
from bench.results.speedup import MIN_PAIRED_CYCLES

CycleTimes = dict[str, dict[int, float]]  # cell id -> cycle -> that round's p50 (ms)


def cycle_times(samples: pd.DataFrame | None) -> CycleTimes:
    """Every cell's p50 per counted cycle, from samples.parquet (empty without its `round` column)."""
    if samples is None or samples.empty or "round" not in samples:
        return {}
    keys = list(IDENTITY_COLUMNS)
    medians = samples.groupby([*keys, "round"], sort=False)["latency_ns"].median() / 1e6
    found: CycleTimes = {}
    for index, p50 in medians.items():
        *identity, cycle = index
        found.setdefault(cell_id(dict(zip(keys, identity))), {})[int(cycle)] = float(p50)
    return found


@dataclass(frozen=True)
class SpeedRatio:
    """How many times faster `a` is than `b` (> 1: a is faster), and its 95% interval where cycles pair."""

    value: float
    interval: Interval | None

    @property
    def a_faster(self) -> bool:
        return self.interval.low > 1 if self.interval is not None else self.value > 1

    @property
    def b_faster(self) -> bool:
        return self.interval.high < 1 if self.interval is not None else self.value < 1

    @property
    def tied(self) -> bool:
        """Neither is faster beyond noise (only with an interval: a bare p50 ratio is never called a tie)."""
        return self.interval is not None and self.interval.contains(1.0)

    def text(self) -> str:
        if self.interval is None:
            return f"{self.value:.2f}x (p50 ratio, no interval)"
        return f"{self.value:.2f}x [{self.interval.low:.2f}, {self.interval.high:.2f}]"


def speed_ratio(a: Mapping[str, Any], b: Mapping[str, Any], cycles: CycleTimes) -> SpeedRatio | None:
    """`a`'s speed over `b`'s (rows of one group): paired by cycle where both have them, else p50 / p50."""
    mine, theirs = cycles.get(cell_id(a), {}), cycles.get(cell_id(b), {})
    common = sorted(c for c in set(mine) & set(theirs) if mine[c] > 0)
    if len(common) >= MIN_PAIRED_CYCLES:
        ratios = [theirs[c] / mine[c] for c in common]
        return SpeedRatio(statistics.median(ratios), median_interval(ratios))
    p50_a, p50_b = a.get("latency_p50_ms"), b.get("latency_p50_ms")
    if not isinstance(p50_a, (int, float)) or not isinstance(p50_b, (int, float)) or p50_a <= 0:
        return None
    return SpeedRatio(float(p50_b) / float(p50_a), None)
