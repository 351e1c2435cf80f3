"""The reference kernel: how fast is this machine right now, against its own fast level?

A fixed convolution loop on the run's threads, timed at the start of a run and before every timed round
(`bench.measure.contention` judges cycles and rows by it). Apart from the contention verdict because it
holds state of its own: the machine's readings, kept in the cache between runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

# The fast level: this quantile of the machine's recent readings (this run's and earlier runs', kept in
# the cache), robust both to a run that is wholly slow and to the one freak reading that a minimum
# would keep for ever (a minimum over history sat 4-6% under every later reading here, and with a 5%
# margin left 55 of 62 rows of quiet runs "noisy").
FAST_LEVEL_QUANTILE = 0.2
HISTORY_READINGS = 400
_KERNEL_CALLS = 20  # about 9 ms on two threads here


class _ConvKernel:
    """A small convolution run `_KERNEL_CALLS` times with the run's intra-op threads: many short
    parallel sections, each ending at a barrier, like the backends' own inference.

    Measured here (2 vCPUs): the machine has slow phases lasting seconds in which multi-threaded,
    barrier-heavy work runs 20-60% slower (the second vCPU answers late) while independent work on
    each core does not slow at all; in 40 s of alternating measurements this kernel followed ORT's QDQ
    int8 latency through them (correlation 0.78), a numpy kernel on two threads did not (0.18)."""

    def __init__(self, threads: int) -> None:
        import torch

        self.torch, self.threads = torch, threads
        generator = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(32, 32, 3, padding=1).eval()
        self.input = torch.randn(1, 32, 64, 64, generator=generator)

    def __call__(self) -> float:
        torch = self.torch
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                self.conv(self.input)
                start = time.perf_counter()
                for _ in range(_KERNEL_CALLS):
                    self.conv(self.input)
                return (time.perf_counter() - start) * 1e3
        finally:
            torch.set_num_threads(previous)


class ReferenceKernel:
    """The reference kernel of one run: timed at its start and before every timed round, each reading
    compared with the machine's fast level at this thread count (`reference_ms`).

    The readings are kept in the cache between runs (`record`, the last HISTORY_READINGS), because a host
    can stay in its slow state for minutes: a run that starts slow would otherwise take its slow state for
    the norm (measured here: five runs in a row, two of them wholly in a slow state, kernel 10.6 ms against
    8.6 ms). The level is a low quantile of them, not their minimum: one freak fast reading would
    otherwise be the norm for ever after."""

    VERSION = 2  # bump when the kernel or the record changes: old readings do not apply

    def __init__(self, threads: int, record: Path | None = None, priority: str = "normal") -> None:
        self._kernel = _ConvKernel(threads)
        self._record = record
        self.priority = priority  # the timed rounds': the kernel must see the machine as they do
        self._readings: list[float] = self._read_record()
        self.reference_ms: float | None = self._level()

    def _read_record(self) -> list[float]:
        try:
            data = json.loads(self._record.read_text()) if self._record else {}
        except (OSError, ValueError):
            return []
        readings = data.get("readings") if isinstance(data, dict) and data.get("version") == self.VERSION else None
        if not isinstance(readings, list):
            return []
        return [float(r) for r in readings if isinstance(r, (int, float)) and r > 0][-HISTORY_READINGS:]

    def _level(self) -> float | None:
        return float(np.quantile(self._readings, FAST_LEVEL_QUANTILE)) if self._readings else None

    def measure(self, keep: bool = True) -> float:
        """One reading (the fastest of three passes), added to the machine's history and its level unless
        `keep` is False: a wait for the fast state reads back to back, hundreds of slow readings that
        would soon be the history, and the level with it."""
        from bench.measure.priority import timed_at

        with timed_at(self.priority):
            ms = min(self._kernel() for _ in range(3))
        if not keep:
            return ms
        self._readings = [*self._readings, ms][-HISTORY_READINGS:]
        self.reference_ms = self._level()
        if self._record is not None:
            try:
                self._record.parent.mkdir(parents=True, exist_ok=True)
                self._record.write_text(json.dumps({"version": self.VERSION, "readings": self._readings}))
            except OSError:
                pass  # a read-only cache only loses the machine's history
        return ms

    def slowdown(self, measured_ms: float) -> float | None:
        """`measured_ms` against the machine's fast level (a cell passes its rounds' median: one slow
        reading must not stand for the whole cell)."""
        return measured_ms / self.reference_ms if self.reference_ms else None
