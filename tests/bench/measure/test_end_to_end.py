"""End-to-end latency (a GPU cell's host batch to host logits): the session's clock around the whole
path, the columns only where such samples were taken, and the counted rounds' samples only."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.backend import Session
from bench.measure.measurement import E2E_METHOD, Measurement
from bench.results.columns import undeclared
from bench.run.stages import _counted_end_to_end


class CopyingSession(Session):
    """Its copies to and from the device take 2 ms each; its run 1 ms."""

    def to_input(self, batch):
        time.sleep(0.002)
        return batch

    def run(self, inputs):
        time.sleep(0.001)
        return inputs

    def to_numpy(self, outputs):
        time.sleep(0.002)
        return np.asarray(outputs)


def test_the_end_to_end_clock_counts_both_copies_and_the_call() -> None:
    session = CopyingSession()
    batch = np.zeros((1, 1, 8, 8), np.float32)
    assert session.time_call(batch) < 4e6  # the call alone
    assert session.time_end_to_end(batch) >= 5e6  # 2 + 1 + 2 ms


def _measurement(end_to_end: np.ndarray | None) -> Measurement:
    samples = np.full(10, 2_000_000, np.int64)
    return Measurement(samples, 1, "cuda_event", 100.0, "ru_maxrss", end_to_end_ns=end_to_end)


def test_the_columns_only_where_end_to_end_samples_were_taken() -> None:
    assert not any(c.startswith("latency_e2e") for c in _measurement(None).columns())
    columns = _measurement(np.arange(1, 101, dtype=np.int64) * 1_000_000).columns()
    assert columns["latency_e2e_p50_ms"] == pytest.approx(50.5)
    assert columns["latency_e2e_p99_ms"] == pytest.approx(99.01)
    assert columns["latency_e2e_iterations"] == 100 and columns["latency_e2e_method"] == E2E_METHOD
    assert undeclared([c for c in columns if c.startswith("latency_e2e")]) == []


def test_only_the_counted_rounds_end_to_end_samples_are_kept() -> None:
    by_round = {0: np.array([1, 2]), 1: np.array([30, 40]), 2: np.array([5])}
    assert list(_counted_end_to_end(by_round, [0, 2])) == [1, 2, 5]
    assert _counted_end_to_end(None, [0]) is None and _counted_end_to_end({}, [0]) is None
    assert _counted_end_to_end({1: np.array([3])}, [0]) is None
