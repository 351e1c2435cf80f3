import time

import numpy as np
import pytest

from bench.backend import Session
from bench.measure.timing import LatencyStats, TimingConfig, time_round, warm_up


def test_stats_on_hand_made_samples():
    stats = LatencyStats.from_samples([1_000_000, 2_000_000, 3_000_000, 4_000_000])  # 1..4 ms
    assert stats.p50_ms == pytest.approx(2.5)
    assert stats.mean_ms == pytest.approx(2.5)
    assert stats.stdev_ms == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert stats.p90_ms == pytest.approx(3.7)
    assert stats.min_ms == 1.0 and stats.iterations == 4
    assert stats.p50_ms <= stats.p90_ms <= stats.p99_ms


def test_empty_samples_are_rejected():
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])


class _SleepySession(Session):
    """A session whose work finishes only at synchronize(), like a GPU queue."""

    def __init__(self) -> None:
        self.synced = 0

    def to_input(self, batch):
        return batch

    def run(self, inputs):
        return inputs

    def to_numpy(self, outputs):
        return outputs

    def synchronize(self) -> None:
        time.sleep(0.01)
        self.synced += 1


def test_measure_meets_min_iterations_when_calls_are_fast():
    samples = time_round(lambda: 1000, seconds=0.01, calls=200, warmup_calls=1)
    assert len(samples) >= 200


def test_measure_meets_min_time_when_calls_are_slow_and_times_until_synchronized():
    session = _SleepySession()
    warm_up(lambda: session.time_call(None), TimingConfig(warmup_s=0, warmup_iters=1))
    samples = time_round(lambda: session.time_call(None), seconds=0.1, calls=2)
    assert len(samples) >= 5  # 0.1 s of 10 ms calls
    assert session.synced == len(samples) + 1  # every timed call and the warm-up call were synchronized
    assert np.median(samples) >= 10_000_000  # the time spent waiting in synchronize() is counted


def test_a_round_counts_its_timed_seconds_not_its_wall_time():
    """A round must hold `seconds` of timed calls: the overhead around each call is not timing."""

    def call_with_overhead() -> int:
        time.sleep(0.002)  # outside the timed window (input copies, Python)
        return 1_000_000  # 1 ms timed

    samples = time_round(call_with_overhead, seconds=0.05, calls=1)
    assert samples.sum() >= 50_000_000 and len(samples) == 50
