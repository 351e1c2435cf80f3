"""Was the machine quiet while a cell was timed? Two independent signals, and a verdict.

1. CPU accounting (Linux `/proc`): over the timed windows, how much CPU the rest of the machine used
   (system-wide busy time from `/proc/stat` minus the timed process's own user+system time from
   `/proc/<pid>/stat`, in % of all cores), how much the hypervisor stole (`steal`), how much of the
   machine the timed process got, and the 1-minute load average.
2. A reference kernel: a fixed convolution loop on `threads` threads (`_ConvKernel`), timed at the
   start of the run and before every timed round; its slowdown against the machine's fast level
   says whether the cores were really available, and its absolute time (`reference_kernel_ms`) lets
   two runs on one machine be compared.

With one other busy process on a 2-core machine, PyTorch's OpenMP threads slowed x6 to x70 while
ONNX Runtime's pool slowed x2.5: ratios between backends stop meaning anything, so a row timed under
contention is marked `noisy: <reason>` instead of being trusted silently.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.results.speedup import ROUNDS_DISAGREED

if TYPE_CHECKING:
    from bench.measure.reference_kernel import ReferenceKernel

# A round is quiet when, during it, other processes used at most this share of all cores
OTHER_CPU_NOISY_PCT = 10.0
# and the hypervisor stole at most this share.
STEAL_NOISY_PCT = 5.0
# `/proc/stat` counts CPU in ticks of 10 ms, read as floored running sums: over a short window a reading of
# another's CPU is a count of a few ticks, and up to this many come from an idle machine (rounding, the
# kernel's own threads). A reading is judged only past it: in 207 rounds of 20 ms (windows of 3-8 ticks on
# 2 vCPUs) of an idle machine, others read 0-2 ticks (up to 33%) and steal 0-1 (up to 17%); a round of the
# default `--min-time 3` lasts ~0.3 s (60 ticks), where the shares above already ask for more than 2.
IDLE_TICKS = 2
# The host switches between a fast state and slow phases of 15 s to minutes in which barrier-heavy work
# runs x1.2-1.6 slower (the reference kernel with it). In the fast state single kernel readings scatter
# over 0.96-1.06x of its level (measured here: 70 readings of one default run), so a state is told by
# a factor half-way between the two: a cycle is in the slow state when the median of its readings is
# over this factor of the fast level, and so is a row whose counted rounds' readings are.
SLOW_STATE_FACTOR = 1.10
# A row's counted rounds disagree when the robust spread of their medians (1.4826 x MAD / median) is
# over this share: the machine changed under the row in a way the other signals did not see. Measured
# on quiet runs here: 1-5%.
ROUND_SPREAD_NOISY = 0.10
# A group is timed for up to MAX_TIMING_FACTOR times the cycles its minimum took, to collect its
# minimum in quiet cycles, and its rows are marked noisy when it could not.
MAX_TIMING_FACTOR = 3.0
# Where the quiet cycles fall short of the minimum but hold at least this share of it, they alone count
# (the row still says `too few quiet rounds`); under it, every round counts.
SHORT_QUIET_SHARE = 0.5

_PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuCounters:
    """Cumulative clock ticks at one moment: the whole machine's, one process's own, and the reader's.

    The reader (the run's parent, which sends each round to the worker and waits for its answer) is not
    another process either: counted as one, its few milliseconds of work around a round made 64 of 120 of a
    tiny model's 20-ms rounds read 14-43% of the CPU used by others on an idle machine (mean 10.9-11.6%);
    without it, 49 of 207 (mean 3.6-6.6%, each of them 1-2 ticks: `IDLE_TICKS`)."""

    total: int
    busy: int  # user + nice + system + irq + softirq (+ steal kept apart)
    steal: int
    process: int  # utime + stime of the timed process, all its threads
    wall: float
    reader: int = 0  # utime + stime of the process reading, when it is not the timed one

    @classmethod
    def read(cls, pid: int) -> CpuCounters | None:
        """None where `/proc` cannot be read (not Linux, or the process is gone)."""
        try:
            fields = [int(v) for v in _PROC_STAT.read_text().splitlines()[0].split()[1:9]]
            timed = _own_ticks(Path(f"/proc/{pid}/stat"))
            reader = 0 if pid == os.getpid() else _own_ticks(Path("/proc/self/stat"))
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        return cls(
            total=sum(fields),
            busy=user + nice + system + irq + softirq,
            steal=steal,
            process=timed,
            wall=time.monotonic(),
            reader=reader,
        )


def _own_ticks(stat_file: Path) -> int:
    """utime + stime of one process, all its threads, from its `/proc/<pid>/stat`."""
    stat = stat_file.read_text()
    own = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    return int(own[11]) + int(own[12])


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

    @property
    def steal_pct(self) -> float | None:
        return 100.0 * self.steal / self.total if self.total > 0 else None

    def busy_reason(self) -> NotQuiet | None:
        """What took the cores in these windows (other processes, the hypervisor), or None: a share over its
        threshold, counted in more ticks than an idle machine shows (`IDLE_TICKS`)."""
        other, steal = self.other_pct, self.steal_pct
        if other is not None and other > OTHER_CPU_NOISY_PCT and self.other > IDLE_TICKS:
            return NotQuiet(OTHER_PROCESSES, other)
        if steal is not None and steal > STEAL_NOISY_PCT and self.steal > IDLE_TICKS:
            return NotQuiet(STEAL, steal)
        return None

    def add(self, before: CpuCounters | None, after: CpuCounters | None) -> None:
        if before is None or after is None:
            return
        process = after.process - before.process
        self.total += after.total - before.total
        reader = after.reader - before.reader
        self.other += max(0, (after.busy - before.busy) - process - reader)
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
    p50_ms: float | None = None  # the round's own median call (rounds.parquet)
    position: int | None = None  # its place in the cycle's shuffled order (0: first)

    @property
    def steal_pct(self) -> float | None:
        return self.cpu.steal_pct

    def busy_reason(self) -> NotQuiet | None:
        """What took the cores from this round while it ran (other processes, the hypervisor), or None.
        The machine's speed is judged per cycle (`cycle_verdicts`), not here."""
        return self.cpu.busy_reason()

    def record(self, cycle: int, reference_ms: float | None, verdict: NotQuiet | None, counted: bool) -> dict[str, Any]:
        """The round as a row of the run's rounds.parquet: what was seen around it, its cycle's verdict
        (empty: quiet) and whether it counted."""
        return {
            "cycle": cycle,
            "position": self.position,
            "calls": self.calls,
            "timed_s": self.seconds,
            "round_p50_ms": self.p50_ms,
            "kernel_ms": self.kernel_ms,
            "kernel_factor": self.kernel_ms / reference_ms if self.kernel_ms and reference_ms else None,
            "cpu_other_pct": self.cpu.other_pct,
            "cpu_steal_pct": self.steal_pct,
            "load_avg_1m": self.load_avg_1m,
            "cycle_quiet": verdict is None,
            "cycle_not_quiet_because": "" if verdict is None else str(verdict),
            "counted": counted,
        }


SLOW_PHASE, OTHER_PROCESSES, STEAL = "slow host phase", "other processes", "CPU steal"


@dataclass(frozen=True)
class NotQuiet:
    """Why a cycle was not quiet: what was seen (`kind`) and how much (a kernel factor, or % of all cores)."""

    kind: str  # SLOW_PHASE, OTHER_PROCESSES or STEAL
    value: float

    def __str__(self) -> str:
        if self.kind == SLOW_PHASE:
            return f"slow host phase (reference kernel x{self.value:.2f})"
        if self.kind == OTHER_PROCESSES:
            return f"other processes used {self.value:.0f}% of the CPU"
        return f"{self.value:.0f}% CPU steal"


def cycle_verdicts(rounds: list[list[TimedRound]], reference_ms: float | None) -> list[NotQuiet | None]:
    """Per cycle of a group (`rounds[c][i]`: cell c's round in cycle i), None when it was quiet, else what
    was seen: a slow host phase (the median of the cycle's kernel readings over SLOW_STATE_FACTOR of the
    fast level) or a round that other processes or the hypervisor took cores from.

    The speed is judged on the cycle's median, not on every reading: a cycle lasts seconds, inside one
    host state, and its readings are as many samples of that state; requiring each reading to pass made
    the rule stricter with every backend added (7 readings per cycle: 0 of 10 cycles passed on a quiet
    machine). Other processes' CPU is measured during each round itself, so every round must pass it, and
    the cycle's rounds pooled must too: rounds too short to count past `IDLE_TICKS` one by one (a busy
    process takes 1-2 of a 20-ms round's 6 ticks) still add up to a reading over the cycle."""
    cycles = min((len(cell) for cell in rounds), default=0)
    verdicts: list[NotQuiet | None] = []
    for i in range(cycles):
        busy = [reason for cell in rounds if (reason := cell[i].busy_reason()) is not None]
        if not busy and (pooled := CpuWindows.summed([cell[i].cpu for cell in rounds]).busy_reason()) is not None:
            busy.append(pooled)
        readings = [ms for cell in rounds if (ms := cell[i].kernel_ms) is not None]
        factor = float(np.median(readings)) / reference_ms if readings and reference_ms else None
        if busy:  # named first: other processes slow the kernel too, and they are its cause, not the host
            verdicts.append(max(busy, key=lambda reason: reason.value))
        elif factor is not None and factor > SLOW_STATE_FACTOR:
            verdicts.append(NotQuiet(SLOW_PHASE, factor))
        else:
            verdicts.append(None)
    return verdicts


def quiet_cycles(rounds: list[list[TimedRound]], reference_ms: float | None) -> list[int]:
    """The cycles of a group that were quiet (`cycle_verdicts`)."""
    return [i for i, verdict in enumerate(cycle_verdicts(rounds, reference_ms)) if verdict is None]


def left_out_summary(verdicts: list[NotQuiet | None]) -> str:
    """What kept cycles out, in a few words: how many, and the worst of each kind seen."""
    left = [v for v in verdicts if v is not None]
    if not left:
        return ""
    parts = []
    for kind, unit in (
        (SLOW_PHASE, "reference kernel up to x{:.2f}"),
        (OTHER_PROCESSES, "up to {:.0f}% of the CPU"),
        (STEAL, "up to {:.0f}%"),
    ):
        seen = [v.value for v in left if v.kind == kind]
        if seen:
            parts.append(f"{kind} in {len(seen)} ({unit.format(max(seen))})")
    return f"{len(left)} of {len(verdicts)} cycles left out: " + "; ".join(parts)


def counted_cycles(
    rounds: list[list[TimedRound]],
    reference_ms: float | None,
    min_calls: int,
    min_seconds: float,
    share: float = 1.0,
) -> list[int] | None:
    """The quiet cycles of a group, when they hold `share` of every cell's minimum count and time; else None.

    `rounds[c][i]` is cell c's round in cycle i (every cell of a group times one round per cycle). The
    cycle, not the round, is judged (`cycle_verdicts`): all the group's rows are then measured over the
    same cycles, so a cell timed only while the machine was fast is never divided by one timed only
    while it was slow. Measured here before this was so: one run counted torch-eager's 10 fast rounds
    and ort-qdq-int8's 10 slow ones, and its speedup read 2.25x against 3.0-3.4x in four other runs."""
    quiet = quiet_cycles(rounds, reference_ms)
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


@dataclass(frozen=True)
class Contention:
    """The row's contention columns and its verdict (thresholds at the top of this module)."""

    cpu_other_pct: float | None  # other processes' CPU, % of all cores, over the timed windows
    cpu_steal_pct: float | None  # stolen by the hypervisor, % of all cores
    cpu_timed_pct: float | None  # the timed process's own CPU, % of all cores
    load_avg_1m: float | None
    reference_kernel_ms: float | None = None  # median of the kernel before the cell's rounds (absolute)
    reference_slowdown: float | None = None  # that median / the machine's fast level
    too_few_quiet_rounds: bool = False  # the quiet cycles did not hold the minimum (bench.run.rounds)
    left_out: str = ""  # what kept the group's cycles out (`left_out_summary`), said with too_few_quiet_rounds
    round_spread: float | None = None  # robust spread of the counted rounds' medians (1.4826 MAD / median)

    @classmethod
    def from_windows(
        cls,
        windows: CpuWindows,
        load: float | None,
        kernel_ms: list[float],
        kernel: ReferenceKernel | None,
        too_few_quiet_rounds: bool = False,
        left_out: str = "",
        round_p50_ms: list[float] | None = None,
    ) -> Contention:
        reference = float(np.median(kernel_ms)) if kernel_ms else None
        slowdown = kernel.slowdown(reference) if kernel is not None and reference is not None else None
        spread = robust_spread(round_p50_ms or [])
        if windows.windows == 0 or windows.total <= 0:
            return cls(None, None, None, load, reference, slowdown, too_few_quiet_rounds, left_out, spread)
        pct = 100.0 / windows.total
        return cls(
            cpu_other_pct=windows.other * pct,
            cpu_steal_pct=windows.steal * pct,
            cpu_timed_pct=windows.process * pct,
            load_avg_1m=load,
            reference_kernel_ms=reference,
            reference_slowdown=slowdown,
            too_few_quiet_rounds=too_few_quiet_rounds,
            left_out=left_out,
            round_spread=spread,
        )

    @property
    def timing_quality(self) -> str:
        """`ok`, `noisy: <what was seen>`, or `unmeasured: <why>` where no signal could be read."""
        reasons = []
        if self.too_few_quiet_rounds:
            reasons.append(f"too few quiet rounds ({self.left_out})" if self.left_out else "too few quiet rounds")
        if self.cpu_other_pct is not None and self.cpu_other_pct > OTHER_CPU_NOISY_PCT:
            reasons.append(f"other processes used {self.cpu_other_pct:.0f}% of the CPU")
        if self.cpu_steal_pct is not None and self.cpu_steal_pct > STEAL_NOISY_PCT:
            reasons.append(f"{self.cpu_steal_pct:.0f}% CPU steal")
        if self.reference_slowdown is not None and self.reference_slowdown > SLOW_STATE_FACTOR:
            kernel = f"reference kernel x{self.reference_slowdown:.2f} its fast level"
            # with other processes on the cores the kernel's slowdown is theirs: no host phase is claimed
            others = self.cpu_other_pct is not None and self.cpu_other_pct > OTHER_CPU_NOISY_PCT
            reasons.append(kernel if others else f"slow host phase ({kernel})")
        if self.round_spread is not None and self.round_spread > ROUND_SPREAD_NOISY:
            reasons.append(f"{ROUNDS_DISAGREED} (their medians spread {100 * self.round_spread:.0f}%)")
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
            "timing_round_spread": self.round_spread,
            "timing_quality": self.timing_quality,
        }


def robust_spread(values: list[float]) -> float | None:
    """1.4826 x the median absolute deviation over the median (a CV that one outlying round cannot move);
    None under three values."""
    if len(values) < 3:
        return None
    array = np.asarray(values, np.float64)
    median = float(np.median(array))
    return 1.4826 * float(np.median(np.abs(array - median))) / median if median > 0 else None
