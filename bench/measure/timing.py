"""Latency measurement: warm up, then time single calls until a minimum time *and* count are met.

Each sample is one `Session.time_call`: `perf_counter_ns` around `run` plus the backend's
`synchronize()` on CPU, device events on the session's stream on GPU, so asynchronous devices are
timed to completion. Statistics are built in one place from the raw samples, which the caller keeps.

Two modes. `sequential`: one backend is timed to the minimum time and count, then the next.
`interleaved` (the default): the backends of one suite and model take turns in short rounds, so a
burst of load or a drift of the machine's speed lands on all of them alike and same-run ratios
survive it. Each round starts with a few untimed calls (in both modes), since the previous round ran
another runtime's code, or the reference kernel, on the same cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TIMING_MODES = ("interleaved", "sequential")
# --speedup-precision: a group times on for at most this many times the cycles its minimum took (a
# 10-cycle minimum: 100 cycles, about 5 minutes for 7 backends of a 22 ms model on a 2-vCPU host)
PRECISION_TIMING_FACTOR = 10


@dataclass(frozen=True)
class TimingConfig:
    warmup_s: float = 0.5
    warmup_iters: int = 5
    min_time_s: float = 3.0
    min_iters: int = 30
    max_iters: int = 100_000
    mode: str = "interleaved"  # one of TIMING_MODES
    rounds: int = 10  # interleaved: each backend's minimum time and count spread over this many rounds
    round_warmup_calls: int = 2  # untimed calls at the start of every round (sequential: its one round)
    # Idle time before every round, so the worker timed before has stopped spinning: ONNX Runtime's
    # pool kept its threads busy ~40 ms after a run here, torch's OpenMP ~10 ms.
    settle_s: float = 0.05
    # Interleaved: seconds a group may spend, in all, waiting for the machine to leave a slow state
    # (the reference kernel over SLOW_STATE_FACTOR times its fast level) before a cycle; 0 never waits.
    quiet_wait_s: float = 0.0
    # What every timed round (and the reference kernel) runs at: one of bench.measure.priority.PRIORITIES,
    # falling back to the next level where the operating system refuses; the row says what it got.
    priority: str = "realtime"
    # Interleaved: time on past the minimum until every row's speedup 95% interval lies within this share
    # of it (0.05: +-5%), within PRECISION_TIMING_FACTOR x the minimum's cycles; None: the minimum.
    speedup_precision: float | None = None

    def round_budget(self) -> tuple[float, int]:
        """(seconds, calls) one round times at least: the whole minimum when sequential."""
        if self.mode == "sequential":
            return self.min_time_s, self.min_iters
        return self.min_time_s / self.rounds, -(-self.min_iters // self.rounds)


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
    """Call until both `min_s` seconds and `min_iters` calls are reached (or `max_iters`). Recording, the
    seconds are the samples' own sum, the time `--min-time` promises and rounds are counted by (the
    calls' overhead outside the timed window would otherwise fall short of it); warming up, wall time."""
    samples: list[int] = []
    start, min_ns, timed_ns = time.perf_counter_ns(), int(min_s * 1e9), 0
    for calls in range(1, max_iters + 1):
        ns = time_call()
        if record:
            samples.append(ns)
            timed_ns += ns
        spent = timed_ns if record else time.perf_counter_ns() - start
        if calls >= min_iters and spent >= min_ns:
            break
    return samples


def warm_up(time_call: Callable[[], int], config: TimingConfig) -> None:
    """Untimed calls for at least `warmup_s` and `warmup_iters` (allocators, caches, lazy kernels)."""
    _repeat_until(time_call, config.warmup_s, config.warmup_iters, config.max_iters, record=False)


def time_round(
    time_call: Callable[[], int], seconds: float, calls: int, warmup_calls: int = 0, max_calls: int = 100_000
) -> np.ndarray:
    """One round: `warmup_calls` untimed calls, then timed ones until both `seconds` and `calls` are reached."""
    for _ in range(warmup_calls):
        time_call()
    return np.asarray(_repeat_until(time_call, seconds, calls, max_calls, record=True), np.int64)
