"""Was the machine quiet while a cell was timed? Two independent signals, and a verdict.

1. CPU accounting (Linux `/proc`): over the timed windows, how much CPU the rest of the machine used
   (system-wide busy time from `/proc/stat` minus the timed process's own user+system time from
   `/proc/<pid>/stat`, in % of all cores), how much the hypervisor stole (`steal`), how much of the
   machine the timed process got, and the 1-minute load average.
2. A reference kernel: a fixed convolution loop on `threads` threads (`_ConvKernel`), timed at the
   start of the run and before every timed round; its slowdown against the machine's quietest time
   says whether the cores were really available, and its absolute time (`reference_kernel_ms`) lets
   two runs on one machine be compared.

With one other busy process on a 2-core machine, PyTorch's OpenMP threads slowed x6 to x70 while
ONNX Runtime's pool slowed x2.5: ratios between backends stop meaning anything, so a row timed under
contention is marked `noisy: <reason>` instead of being trusted silently.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

# A row is noisy when, over its timed windows, another process used more than this share of all cores,
OTHER_CPU_NOISY_PCT = 10.0
# the hypervisor stole more than this share,
STEAL_NOISY_PCT = 5.0
# or the reference kernel, before its counted rounds, ran this much slower (median) than the machine's quietest.
REFERENCE_NOISY_SLOWDOWN = 1.10
# A round is quiet when the kernel before it ran within this factor of the machine's quietest time and
# other processes stayed under OTHER_CPU_NOISY_PCT during it; a cycle (one round of every cell of a group)
# counts when all its rounds were quiet. A group is timed for up to MAX_TIMING_FACTOR times the cycles its
# minimum took, to collect its minimum in quiet cycles, and its rows are marked noisy when it could not.
QUIET_KERNEL_FACTOR = 1.05
MAX_TIMING_FACTOR = 3.0
# Where the quiet cycles fall short of the minimum but hold at least this share of it, they alone count
# (the row still says `too few quiet rounds`); under it, every round counts.
SHORT_QUIET_SHARE = 0.5

_PROC_STAT = Path("/proc/stat")
_KERNEL_CALLS = 20  # about 9 ms on two threads here


@dataclass(frozen=True)
class CpuCounters:
    """Cumulative clock ticks at one moment: the whole machine's, and one process's own."""

    total: int
    busy: int  # user + nice + system + irq + softirq (+ steal kept apart)
    steal: int
    process: int  # utime + stime of the timed process, all its threads
    wall: float

    @classmethod
    def read(cls, pid: int) -> CpuCounters | None:
        """None where `/proc` cannot be read (not Linux, or the process is gone)."""
        try:
            fields = [int(v) for v in _PROC_STAT.read_text().splitlines()[0].split()[1:9]]
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        own = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
        return cls(
            total=sum(fields),
            busy=user + nice + system + irq + softirq,
            steal=steal,
            process=int(own[11]) + int(own[12]),
            wall=time.monotonic(),
        )


@dataclass
class CpuWindows:
    """Clock ticks summed over every window in which one process was timed (rounds, in interleaved mode)."""

    total: int = 0
    other: int = 0
    steal: int = 0
    process: int = 0
    wall_s: float = 0.0
    windows: int = 0

    @classmethod
    def between(cls, before: CpuCounters | None, after: CpuCounters | None) -> CpuWindows:
        window = cls()
        window.add(before, after)
        return window

    @classmethod
    def summed(cls, windows: list[CpuWindows]) -> CpuWindows:
        return cls(*(sum(getattr(w, f.name) for w in windows) for f in fields(cls)))

    @property
    def other_pct(self) -> float | None:
        return 100.0 * self.other / self.total if self.total > 0 else None

    def add(self, before: CpuCounters | None, after: CpuCounters | None) -> None:
        if before is None or after is None:
            return
        process = after.process - before.process
        self.total += after.total - before.total
        self.other += max(0, (after.busy - before.busy) - process)
        self.steal += after.steal - before.steal
        self.process += process
        self.wall_s += after.wall - before.wall
        self.windows += 1


@dataclass(frozen=True)
class TimedRound:
    """One round of one cell: how many calls, their summed time, how fast the machine was just before it
    (the reference kernel), what the rest of the machine did during it, and the load average after it."""

    calls: int
    seconds: float  # the timed calls' own time (what the minimum time counts), not the round's wall time
    kernel_ms: float | None
    cpu: CpuWindows
    load_avg_1m: float | None = None

    def quiet(self, quietest_kernel_ms: float | None) -> bool:
        other = self.cpu.other_pct
        if other is not None and other > OTHER_CPU_NOISY_PCT:
            return False
        if self.kernel_ms is None or not quietest_kernel_ms:
            return True
        return self.kernel_ms <= QUIET_KERNEL_FACTOR * quietest_kernel_ms


def quiet_cycles(rounds: list[list[TimedRound]], quietest_kernel_ms: float | None) -> list[int]:
    """The cycles in which every cell's round was quiet (`rounds[c][i]`: cell c's round in cycle i)."""
    cycles = min((len(cell) for cell in rounds), default=0)
    return [i for i in range(cycles) if all(cell[i].quiet(quietest_kernel_ms) for cell in rounds)]


def counted_cycles(
    rounds: list[list[TimedRound]],
    quietest_kernel_ms: float | None,
    min_calls: int,
    min_seconds: float,
    share: float = 1.0,
) -> list[int] | None:
    """The quiet cycles of a group, when they hold `share` of every cell's minimum count and time; else None.

    `rounds[c][i]` is cell c's round in cycle i (every cell of a group times one round per cycle). A
    cycle is quiet when every cell's round in it was: all the group's rows are then measured over the
    same cycles, so a cell timed only while the machine was fast is never divided by one timed only
    while it was slow. Measured here before this was so: one run counted torch-eager's 10 fast rounds
    and ort-qdq-int8's 10 slow ones, and its speedup read 2.25x against 3.0-3.4x in four other runs."""
    quiet = quiet_cycles(rounds, quietest_kernel_ms)
    for cell in rounds:
        calls, seconds = sum(cell[i].calls for i in quiet), sum(cell[i].seconds for i in quiet)
        if calls < share * min_calls or seconds < share * min_seconds:
            return None
    return quiet if rounds else None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


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


@dataclass(frozen=True)
class Contention:
    """The row's contention columns and its verdict (thresholds at the top of this module)."""

    cpu_other_pct: float | None  # other processes' CPU, % of all cores, over the timed windows
    cpu_steal_pct: float | None  # stolen by the hypervisor, % of all cores
    cpu_timed_pct: float | None  # the timed process's own CPU, % of all cores
    load_avg_1m: float | None
    reference_kernel_ms: float | None = None  # median of the kernel before the cell's rounds (absolute)
    reference_slowdown: float | None = None  # that median / the machine's quietest kernel time
    too_few_quiet_rounds: bool = False  # the quiet rounds did not hold the minimum (bench.run.rounds)

    @classmethod
    def from_windows(
        cls,
        windows: CpuWindows,
        load: float | None,
        kernel_ms: list[float],
        kernel: ReferenceKernel | None,
        too_few_quiet_rounds: bool = False,
    ) -> Contention:
        reference = float(np.median(kernel_ms)) if kernel_ms else None
        slowdown = kernel.slowdown(reference) if kernel is not None and reference is not None else None
        if windows.windows == 0 or windows.total <= 0:
            return cls(None, None, None, load, reference, slowdown, too_few_quiet_rounds)
        pct = 100.0 / windows.total
        return cls(
            cpu_other_pct=windows.other * pct,
            cpu_steal_pct=windows.steal * pct,
            cpu_timed_pct=windows.process * pct,
            load_avg_1m=load,
            reference_kernel_ms=reference,
            reference_slowdown=slowdown,
            too_few_quiet_rounds=too_few_quiet_rounds,
        )

    @property
    def timing_quality(self) -> str:
        """`ok`, `noisy: <reasons>`, or `unmeasured: <why>` where no signal could be read."""
        reasons = []
        if self.too_few_quiet_rounds:
            reasons.append("too few quiet rounds")
        if self.cpu_other_pct is not None and self.cpu_other_pct > OTHER_CPU_NOISY_PCT:
            reasons.append(f"other processes used {self.cpu_other_pct:.0f}% of the CPU")
        if self.cpu_steal_pct is not None and self.cpu_steal_pct > STEAL_NOISY_PCT:
            reasons.append(f"{self.cpu_steal_pct:.0f}% CPU steal")
        if self.reference_slowdown is not None and self.reference_slowdown > REFERENCE_NOISY_SLOWDOWN:
            reasons.append(f"reference kernel x{self.reference_slowdown:.2f} slower")
        if reasons:
            return "noisy: " + ", ".join(reasons)
        if self.cpu_other_pct is None and self.reference_slowdown is None:
            return "unmeasured: no /proc accounting and no reference kernel"
        return "ok"

    def columns(self) -> dict[str, Any]:
        return {
            "cpu_other_pct": self.cpu_other_pct,
            "cpu_steal_pct": self.cpu_steal_pct,
            "cpu_timed_pct": self.cpu_timed_pct,
            "load_avg_1m": self.load_avg_1m,
            "reference_kernel_ms": self.reference_kernel_ms,
            "reference_slowdown": self.reference_slowdown,
            "timing_quality": self.timing_quality,
        }


class ReferenceKernel:
    """The reference kernel of one run: timed at its start and before every timed round, each time
    compared with the quietest time this machine has shown at this thread count.

    The quietest time is kept in the cache between runs (`record`), because a host can stay in its slow
    state for minutes: a run that starts slow would otherwise take its slow state for the norm. Measured
    here: five runs in a row, two of them wholly in a slow state (kernel 10.6 ms against 8.6 ms)."""

    VERSION = 1  # bump when the kernel changes: old quietest times do not apply

    def __init__(self, threads: int, record: Path | None = None, priority: str = "normal") -> None:
        self._kernel = _ConvKernel(threads)
        self._record = record
        self.priority = priority  # the timed rounds': the kernel must see the machine as they do
        self.quietest_ms: float | None = self._read_record()

    def _read_record(self) -> float | None:
        try:
            data = json.loads(self._record.read_text()) if self._record else {}
        except (OSError, ValueError):
            return None
        value = data.get("quietest_ms") if data.get("version") == self.VERSION else None
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    def measure(self) -> float:
        from bench.measure.priority import timed_at

        with timed_at(self.priority):
            ms = min(self._kernel() for _ in range(3))
        if self.quietest_ms is None or ms < self.quietest_ms:
            self.quietest_ms = ms
            if self._record is not None:
                try:
                    self._record.parent.mkdir(parents=True, exist_ok=True)
                    self._record.write_text(json.dumps({"version": self.VERSION, "quietest_ms": ms}))
                except OSError:
                    pass  # a read-only cache only loses the machine's history
        return ms

    def slowdown(self, measured_ms: float) -> float | None:
        """`measured_ms` against the machine's quietest time (a cell passes its rounds' median: one slow
        reading, whose round is left out anyway, must not stand for the whole cell)."""
        return measured_ms / self.quietest_ms if self.quietest_ms else None
