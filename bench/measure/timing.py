"""Latency measurement: warm up, then time single calls until a minimum time *and* count are met.

Each sample is one `Session.time_call`: `perf_counter_ns` around `run` plus the backend's
`synchronize()` on CPU, device events on the session's stream on GPU, so asynchronous devices are
timed to completion. Statistics are built in one place from the raw samples, which the caller keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TimingConfig:
    warmup_s: float = 0.5
    warmup_iters: int = 5
    min_time_s: float = 3.0
    min_iters: int = 30
    max_iters: int = 100_000


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples in milliseconds; stdev is the sample standard deviation."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    stdev_ms: float
    min_ms: float
    max_ms: float
    cv: float
    iterations: int

    @classmethod
    def from_samples(cls, samples_ns: np.ndarray | list[int]) -> LatencyStats:
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        if ms.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        mean = float(ms.mean())
        stdev = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
        return cls(
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=mean,
            stdev_ms=stdev,
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            cv=stdev / mean if mean else float("nan"),
            iterations=int(ms.size),
        )

    def columns(self) -> dict[str, Any]:
        """`latency_<statistic>` row columns (unit in the name: `_ms`)."""
        return {f"latency_{name}": value for name, value in asdict(self).items()}


def _repeat_until(
    time_call: Callable[[], int], min_s: float, min_iters: int, max_iters: int, record: bool
) -> list[int]:
    """Call until both `min_s` wall seconds and `min_iters` calls are reached (or `max_iters`)."""
    samples: list[int] = []
    deadline = time.perf_counter_ns() + int(min_s * 1e9)
    while len(samples) < max_iters:
        samples.append(time_call())
        if len(samples) >= min_iters and time.perf_counter_ns() >= deadline:
            break
    return samples if record else []


def measure_latency(time_call: Callable[[], int], config: TimingConfig = TimingConfig()) -> np.ndarray:
    """Raw per-call latencies in nanoseconds, as reported by `time_call` (one call, synchronized)."""
    _repeat_until(time_call, config.warmup_s, config.warmup_iters, config.max_iters, record=False)
    return np.asarray(
        _repeat_until(time_call, config.min_time_s, config.min_iters, config.max_iters, record=True), np.int64
    )
