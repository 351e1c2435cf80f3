"""The timing stage's record: latency statistics of one loaded session, with the samples they came
from and how each number was measured (timer, memory method)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.measure.timing import LatencyStats


@dataclass(frozen=True)
class Measurement:
    samples_ns: np.ndarray  # every timed call, in order
    batch_size: int
    timer: str  # perf_counter_ns | cuda_event
    peak_rss_mib: float
    memory_method: str
    peak_device_mib: float | None = None
    device_memory_method: str | None = None

    @property
    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.samples_ns)

    def columns(self) -> dict[str, Any]:
        stats = self.stats
        return {
            **stats.columns(),
            "throughput_ips": self.batch_size / (stats.p50_ms / 1e3),
            "timer": self.timer,
            "peak_rss_mib": self.peak_rss_mib,
            "memory_method": self.memory_method,
            "peak_device_mib": self.peak_device_mib,
            "device_memory_method": self.device_memory_method,
        }
