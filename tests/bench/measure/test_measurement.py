"""The timing stage's record: what the backend added to the process's memory, each round's median (what a
paired speedup needs) and the row's timing and memory columns."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.contention import Contention
from bench.measure.measurement import Measurement


def _measurement(**values: object) -> Measurement:
    defaults: dict[str, object] = {
        "samples_ns": np.array([1_000_000, 2_000_000, 3_000_000, 5_000_000], np.int64),
        "batch_size": 2,
        "timer": "perf_counter_ns",
        "peak_rss_mib": 300.0,
        "memory_method": "VmHWM-after-reset",
    }
    return Measurement(**{**defaults, **values})  # type: ignore[arg-type]


def test_the_backend_memory_is_the_peak_above_the_baseline():
    assert _measurement(baseline_rss_mib=200.0).backend_rss_mib == 100.0
    assert _measurement().backend_rss_mib is None


def test_each_rounds_median_in_ms():
    samples = np.array([1, 2, 6, 3, 4, 5], np.int64) * 1_000_000
    rounds = _measurement(samples_ns=samples, sample_rounds=np.array([3, 3, 3, 5, 5, 5]))
    assert rounds.round_p50_ms() == {3: 2.0, 5: 4.0}  # medians: round 3's mean would be 3
    assert _measurement().round_p50_ms() == {}


def test_the_columns_hold_the_latency_the_throughput_and_how_each_was_measured():
    contention = Contention(cpu_other_pct=1.5, cpu_steal_pct=0.0, cpu_timed_pct=50.0, load_avg_1m=0.4)
    columns = _measurement(baseline_rss_mib=200.0, contention=contention, timing_rounds=4).columns()
    assert columns["latency_p50_ms"] == 2.5 and columns["latency_min_ms"] == 1.0 and columns["latency_max_ms"] == 5.0
    assert columns["throughput_ips"] == pytest.approx(800.0)  # 2 images per 2.5 ms
    assert columns["cpu_other_pct"] == 1.5 and columns["load_avg_1m"] == 0.4
    assert {k: columns[k] for k in ("timer", "timing_mode", "timing_rounds", "memory_method", "allocator")} == {
        "timer": "perf_counter_ns",
        "timing_mode": "sequential",
        "timing_rounds": 4,
        "memory_method": "VmHWM-after-reset",
        "allocator": "default",
    }
    assert (columns["backend_rss_mib"], columns["peak_rss_mib"], columns["baseline_rss_mib"]) == (100.0, 300.0, 200.0)


def test_without_a_contention_record_its_columns_are_empty_not_missing():
    columns = _measurement().columns()
    assert columns["cpu_other_pct"] is None and columns["load_avg_1m"] is None
    assert set(Contention(None, None, None, None).columns()) <= set(columns)
