"""Timing the cells of one group (suite, model, device, batch size) in rounds.

Interleaved (the default): every cell's session is loaded in its own worker first; then, cycle after
cycle, each cell in turn (in a shuffled order per cycle, seeded, so no backend always follows the same
one) times a short round, until every cell has its minimum time and count in the cycles that count.
A burst of load or a drift of the machine's speed then lands on every backend of the group alike, and
the ratios between them, which is what a user compares, survive it. Sequential: one cell at a time, one long round each.

Before every round the run's reference kernel is timed, and each round's CPU accounting goes to its
cell, so every row says how quiet (and how fast) the machine was while it was measured. Which cycles
count is decided for the group, not per cell: every row of a group is measured over the same cycles,
and `speedup_vs_fp32` pairs them (`bench.results.speedup`).

With `--scenario offline|server` the group's scenario follows (`bench.run.scenario`): after every cell's
evaluation, before any profile, its backends again in turns.

A group may also wait, before a cycle, for the machine to leave a slow state (`--wait-for-quiet`): the
hosts here switch between a fast and a slow state (reference kernel x1.2, every backend 10-50% slower,
each by its own factor) for spans of 15 s to over 2 minutes, and the ratios of a cycle timed in the slow
state differ from those of a fast one (ort-qdq-int8's speedup 2.55x against 3.06-3.10x). Waiting
through a slow span costs seconds; timing through it costs the run's comparability with the others.

A group may also be asked for a precision (`--speedup-precision PCT`): past its minimum it times on
until every row's speedup 95% interval lies within PCT% of it, for at most `PRECISION_TIMING_FACTOR`
times the cycles the minimum took. Why: on a host whose speed moves between rounds a few tenths of a
second apart, per-cycle ratios spread 12-15%, so the minimum's 10-30 cycles know a speedup to about
+-5-10% and quiet runs' speedups differ by more than 5% in a sixth of the rows (docs/timing.md); only
more cycles narrow that, and on a steady host the minimum already meets the target and costs nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.measure.contention import (
    MAX_TIMING_FACTOR,
    SHORT_QUIET_SHARE,
    SLOW_STATE_FACTOR,
    counted_cycles,
    cycle_verdicts,
    quiet_cycles,
)
from bench.measure.reference_kernel import ReferenceKernel
from bench.measure.timing import PRECISION_TIMING_FACTOR
from bench.results.speedup import REFERENCE, TimedRounds, paired_speedup
from bench.run.cell import CellOutcome, GroupTiming, MeasuringCell
from bench.run.scenario import run_scenario

SHUFFLE_SEED = 0


@dataclass
class QuietWait:
    """A group's allowance of seconds to wait for the machine's fast state, and what it spent.

    It waits by reading the kernel back to back, not by sleeping between readings: measured here, a
    kernel read once a second after an idle pause was slow in 70% of its readings, read continuously
    in 38% over the same two minutes. The cores must be kept as busy as the timing keeps them, or the
    wait would measure their wake-up."""

    budget_s: float
    waited_s: float = 0.0
    slowest: float = 1.0  # the slowest reading that made the group wait, against the fast level
    gave_up: bool = False

    def before_cycle(self, kernel: ReferenceKernel) -> None:
        """Read the kernel until it is within SLOW_STATE_FACTOR of the machine's fast level, or the
        allowance is spent (then the cycle is timed anyway, and judged by the rules that count cycles).
        These readings are not kept in the machine's history (`ReferenceKernel.measure`)."""
        if self.waited_s >= self.budget_s:
            return
        start, slow = time.monotonic(), False
        while True:
            level = kernel.reference_ms
            reading = kernel.measure(keep=False)
            if not level or reading <= SLOW_STATE_FACTOR * level:
                break
            slow, self.slowest = True, max(self.slowest, reading / level)
            if self.waited_s + time.monotonic() - start >= self.budget_s:
                self.gave_up = True
                break
        if slow:
            self.waited_s += time.monotonic() - start

    def summary(self) -> str | None:
        if not self.waited_s:
            return None
        state = f"the machine was in a slow phase (reference kernel up to x{self.slowest:.2f} its fast level)"
        if self.gave_up:
            return f"{state}: waited {self.waited_s:.1f} s, the whole allowance, then timed on"
        return f"{state}: waited {self.waited_s:.1f} s for it to pass"


def time_cells(
    cells: list[MeasuringCell], kernel: ReferenceKernel, log: Callable[[str], None] | None = None
) -> list[CellOutcome]:
    """Time the cells in cycles (one round of every live cell, in a shuffled order) until the group's
    quiet cycles hold every cell's minimum, then evaluate each: one outcome per cell, in cell order.

    Past the cycles the minimum took, the group goes on (up to `MAX_TIMING_FACTOR` times as many) only
    while quiet cycles do come: a machine that stays slow all along is not waited for, and its rows say
    their timing was noisy. A cell whose worker fails leaves the group; the others go on. Before each
    cycle the group may wait for a slow state to pass (`TimingConfig.quiet_wait_s`, for all its cycles)."""
    order = random.Random(SHUFFLE_SEED)
    # Sequential timing keeps its old behaviour and never waits: there every cell is a group of its own,
    # and under lasting load (one busy core here) each of 7 cells would wait the whole allowance.
    timing = cells[0].spec.timing if cells else None
    wait = QuietWait(timing.quiet_wait_s if timing is not None and timing.mode == "interleaved" else 0.0)
    cycles_to_minimum: int | None = None
    while live := [cell for cell in cells if cell.failure is None]:
        cycles = len(live[0].rounds)
        if cycles_to_minimum is None and cycles and all(cell.has_minimum() for cell in live):
            cycles_to_minimum = cycles
        done = _enough(live, kernel, cycles, cycles_to_minimum)
        if done and _precise_enough(live, kernel, cycles, cycles_to_minimum):
            break
        wait.before_cycle(kernel)
        order.shuffle(live)
        for position, cell in enumerate(live):
            cell.time_round(kernel, position)
    if log is not None and (said := wait.summary()):
        log(said)
    live = [cell for cell in cells if cell.failure is None]
    if log is not None and (said := _precision_summary(live, kernel, cycles_to_minimum)):
        log(said)
    reference = kernel.reference_ms
    verdicts = tuple(cycle_verdicts([cell.rounds for cell in live], reference))
    counted = _counted(live, kernel)
    too_few_quiet = counted is None
    if too_few_quiet:
        # Short of quiet cycles: those that came still count, if they hold SHORT_QUIET_SHARE of the minimum,
        # rather than mixing the machine's fast and slow states in one number; the rows say it was noisy.
        counted = _counted(live, kernel, SHORT_QUIET_SHARE)
    fp32 = next((cell for cell in live if (cell.spec.backend, cell.spec.precision) == REFERENCE), None)
    fp32_p50 = fp32.median_p50_ms(counted) if fp32 is not None else None
    decided = GroupTiming(counted, too_few_quiet, verdicts, reference, fp32_p50)
    if live and live[0].spec.scenario.active:  # --scenario offline|server: after every evaluation, before profiles
        for cell in live:
            cell.measure(decided)
        run_scenario(live, kernel, log or (lambda line: None))
    return [cell.finish(decided) for cell in cells]


def _counted(live: list[MeasuringCell], kernel: ReferenceKernel, share: float = 1.0) -> list[int] | None:
    if not live:
        return None
    timing = live[0].spec.timing
    rounds = [cell.rounds for cell in live]
    return counted_cycles(rounds, kernel.reference_ms, timing.min_iters, timing.min_time_s, share)


def _enough(live: list[MeasuringCell], kernel: ReferenceKernel, cycles: int, cycles_to_minimum: int | None) -> bool:
    if cycles_to_minimum is None:  # some cell has not had its minimum yet
        return False
    if _counted(live, kernel) is not None:
        return True
    quiet_came = bool(quiet_cycles([cell.rounds for cell in live], kernel.reference_ms))
    return not quiet_came or cycles >= MAX_TIMING_FACTOR * cycles_to_minimum


def _precise_enough(
    live: list[MeasuringCell], kernel: ReferenceKernel, cycles: int, cycles_to_minimum: int | None
) -> bool:
    """Without --speedup-precision, always; with it, once every row's speedup interval is within the
    target over the cycles that count, or the group has timed `PRECISION_TIMING_FACTOR` times the cycles
    its minimum took (then `_precision_summary` names the rows that fell short)."""
    target = live[0].spec.timing.speedup_precision
    if target is None or cycles_to_minimum is None or cycles >= PRECISION_TIMING_FACTOR * cycles_to_minimum:
        return True
    return all(reach <= target for reach in _reaches(live, kernel).values())


def _reaches(live: list[MeasuringCell], kernel: ReferenceKernel) -> dict[str, float]:
    """How far each row's speedup 95% interval reaches from it, as a share (0.05: +-5%), over the cycles
    that would count now: the interval its row will publish (`bench.results.speedup.paired_speedup`); by
    "backend precision" (a backend may run at two precisions). A group without fp32 eager has no speedups
    to narrow."""
    reference = next((cell for cell in live if (cell.spec.backend, cell.spec.precision) == REFERENCE), None)
    if reference is None:
        return {}
    counted = _counted(live, kernel) or _counted(live, kernel, SHORT_QUIET_SHARE)
    reaches = {}
    for cell in live:
        if cell is reference:
            continue
        speedup = paired_speedup(_per_cycle(reference, counted), _per_cycle(cell, counted))
        interval = speedup.interval if speedup is not None else None
        name = f"{cell.spec.backend} {cell.spec.precision}"
        if interval is not None and speedup is not None and speedup.value > 0:
            reaches[name] = max(interval.high / speedup.value - 1, 1 - interval.low / speedup.value)
        else:
            reaches[name] = float("inf")  # too few cycles to pair yet
    return reaches


def _per_cycle(cell: MeasuringCell, cycles: list[int] | None) -> TimedRounds:
    chosen = range(len(cell.rounds)) if cycles is None else [c for c in cycles if c < len(cell.rounds)]
    return TimedRounds(0, {c: p50 for c in chosen if (p50 := cell.rounds[c].p50_ms) is not None})


def _precision_summary(live: list[MeasuringCell], kernel: ReferenceKernel, cycles_to_minimum: int | None) -> str | None:
    """One line for the log when --speedup-precision was asked for: met after how many cycles, or which
    rows still reach past it when the group stopped."""
    target = live[0].spec.timing.speedup_precision if live else None
    if target is None or cycles_to_minimum is None:
        return None
    cycles = len(live[0].rounds)
    short = {name: reach for name, reach in _reaches(live, kernel).items() if reach > target}
    asked = f"+-{100 * target:g}%"
    if not short:
        return (
            f"every speedup's 95% interval within {asked} after {cycles} cycles (the minimum took {cycles_to_minimum})"
        )
    rows = ", ".join(f"{name} +-{100 * reach:.1f}%" for name, reach in sorted(short.items(), key=lambda kv: -kv[1]))
    return (
        f"speedup intervals still wider than {asked} after {cycles} cycles ({PRECISION_TIMING_FACTOR}x the "
        f"{cycles_to_minimum} the minimum took, the most a group times): {rows}"
    )
