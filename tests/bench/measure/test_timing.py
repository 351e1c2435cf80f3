import time

import numpy as np
import pytest

from bench.backend import Session
from bench.measure.timing import LatencyStats, TimingConfig, measure_latency


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
    samples = measure_latency(lambda: 1000, TimingConfig(warmup_s=0, warmup_iters=1, min_time_s=0.01, min_iters=200))
    assert len(samples) >= 200


def test_measure_meets_min_time_when_calls_are_slow_and_times_until_synchronized():
    session = _SleepySession()
    config = TimingConfig(warmup_s=0, warmup_iters=1, min_time_s=0.1, min_iters=2)
    samples = measure_latency(lambda: session.time_call(None), config)
    assert len(samples) >= 5  # 0.1 s of 10 ms calls
    assert session.synced == len(samples) + 1  # every timed call and the warm-up call were synchronized
    assert np.median(samples) >= 10_000_000  # the time spent waiting in synchronize() is counted
