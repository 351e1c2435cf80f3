"""The timing stage's record: latency statistics of one loaded session, with the samples they came
from and how each number was measured (timer, timing mode and rounds, memory method), and whether the
machine was quiet meanwhile (`Contention`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.measure.contention import Contention
from bench.measure.timing import LatencyStats

E2E_METHOD = "perf_counter_ns: host batch to host logits (to_input, run, to_numpy, synchronize)"


@dataclass(frozen=True)
class Measurement:
    samples_ns: np.ndarray  # every timed call, in order
    batch_size: int
    timer: str  # perf_counter_ns | cuda_event
    peak_rss_mib: float  # the process's high-water mark while loading and timing the session
    memory_method: str
    baseline_rss_mib: float | None = None  # the process before loading: runtime imported, nothing loaded
    evaluation_peak_rss_mib: float | None = None  # the high-water mark while evaluating, session included
    allocator: str = "default"  # how the process's malloc was set (bench.measure.memory.keep_freed_memory)
    session_notes: str = ""  # what loading the session did in this run (bench.backend.Session.notes)
    peak_device_mib: float | None = None
    device_memory_method: str | None = None
    timing_mode: str = "sequential"  # interleaved | sequential (bench.measure.timing)
    timing_rounds: int = 1  # rounds whose samples are counted
    timing_rounds_left_out: int = 0  # rounds timed while the machine ran slow or was busy, not counted
    sample_rounds: np.ndarray | None = None  # the round of every sample
    contention: Contention | None = None  # filled by the parent, which watched the timed windows
    timing_priority: str | None = None  # what the timed calls ran at (bench.measure.priority), last round's
    # a GPU cell's host-to-host calls (Session.time_end_to_end), taken in the same counted rounds; None on CPU
    end_to_end_ns: np.ndarray | None = None

    @property
    def backend_rss_mib(self) -> float | None:
        """What loading and running the backend added to the process: its own memory."""
        return None if self.baseline_rss_mib is None else self.peak_rss_mib - self.baseline_rss_mib

    def round_p50_ms(self) -> dict[int, float]:
        """The p50 of each counted round, by round number (= timing cycle): what a paired speedup needs."""
        if self.sample_rounds is None:
            return {}
        return {
            int(r): float(np.median(self.samples_ns[self.sample_rounds == r])) / 1e6
            for r in np.unique(self.sample_rounds)
        }

    @property
    def stats(self) -> LatencyStats:
        return LatencyStats.from_samples(self.samples_ns)

    def columns(self) -> dict[str, Any]:
        stats = self.stats
        contention = self.contention or Contention(None, None, None, None, None)
        return {
            **stats.columns(),
            "throughput_ips": self.batch_size / (stats.p50_ms / 1e3),
            "timer": self.timer,
            "timing_mode": self.timing_mode,
            "timing_rounds": self.timing_rounds,
            "timing_rounds_left_out": self.timing_rounds_left_out,
            "timing_priority": self.timing_priority,
            **contention.columns(),
            "backend_rss_mib": self.backend_rss_mib,
            "peak_rss_mib": self.peak_rss_mib,
            "baseline_rss_mib": self.baseline_rss_mib,
            "evaluation_peak_rss_mib": self.evaluation_peak_rss_mib,
            "memory_method": self.memory_method,
            "allocator": self.allocator,
            "peak_device_mib": self.peak_device_mib,
            "device_memory_method": self.device_memory_method,
            **self._end_to_end_columns(),
        }

    def _end_to_end_columns(self) -> dict[str, Any]:
        """`latency_e2e_*`: host batch in, host logits out, copies included (trtexec's end-to-end latency),
        beside the compute-only `latency_*` a GPU cell's CUDA events measure."""
        if self.end_to_end_ns is None or not len(self.end_to_end_ns):
            return {}
        samples = self.end_to_end_ns.astype(np.float64) / 1e6
        return {
            "latency_e2e_p50_ms": float(np.percentile(samples, 50)),
            "latency_e2e_p99_ms": float(np.percentile(samples, 99)),
            "latency_e2e_iterations": int(len(samples)),
            "latency_e2e_method": E2E_METHOD,
        }
