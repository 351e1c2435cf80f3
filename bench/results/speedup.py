"""`speedup_vs_fp32`: how many times faster a row is than the fp32 reference of its group, both measured
in the same run, and `speedup_method`, how.

Speeds are compared as ratios measured in the same run, because absolute times on shared machines
drift between runs. Interleaved timing goes further: every backend of a group times one round per
cycle, and the group counts the same cycles for all (`bench.run.rounds`), so the speedup is the median
over those cycles of the reference's round p50 over the row's round p50 (`paired`). A drift of the
machine's speed between cycles then cancels instead of landing on whichever backend it met. Measured
here, five default runs in a row on a quiet 2-vCPU VM whose speed moved ±20% between runs: the ratio
of whole-run p50s varied by 3.5-14.9% (coefficient of variation per backend), the paired ratio of the
same runs' samples by 3.1-9.0%. With the cycles chosen for the whole group and paired, eight runs
whose rows read `ok` varied by 1.1-2.5%. Where the reference was timed apart (sequential timing, or a resumed
run that finds it on disk) no cycle can be paired, and the speedup is the ratio of the p50s.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.results.intervals import Interval, median_interval

REFERENCE = ("torch-eager", "fp32")  # (backend, precision) every speedup is measured against
GROUP_COLUMNS = ("suite", "model", "device", "batch_size", "input_size")  # input_size: "" at the suite's own
MIN_PAIRED_CYCLES = 3  # fewer common cycles than this: the p50 ratio instead


NO_INTERVAL = "none: the reference was timed apart (p50 ratio, no cycles to pair)"
# timing_quality's reason when the counted rounds' medians spread over ROUND_SPREAD_NOISY (bench.measure.contention)
ROUNDS_DISAGREED = "rounds disagreed"


def ratios_trusted(timing_quality: object) -> bool:
    """May a row's paired speed ratios be ranked? Yes when its timing is not noisy, or noisy only because
    its rounds disagreed: the latency's level moved from cycle to cycle, which pairing by cycle cancels and
    the ratio's interval carries (its latency stays flagged). Every other reason can bias a ratio: other
    processes and steal slow each runtime by its own factor, and a slow host phase moved ratios 10-15%.

    Why: on a host whose rounds' medians spread 10-15% whatever the load, the decision refused the fastest
    cell in 2 of 6 quiet default runs for that reason alone and shipped another (ort fp32 1.62x, ort-qdq-int8
    2.40x), while openvino-int8's paired speedup read 3.13-3.33x in all six (docs/decision.md)."""
    text = str(timing_quality or "")
    return not text.startswith("noisy") or text.startswith(f"noisy: {ROUNDS_DISAGREED} (")


@dataclass(frozen=True)
class Speedup:
    value: float
    method: str  # "paired: median of N per-cycle p50 ratios" or "p50 ratio"
    interval: Interval | None = None  # 95% interval of the median per-cycle ratio (paired only)

    def columns(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "speedup_vs_fp32": self.value,
            "speedup_method": self.method,
            "speedup_vs_fp32_ci_low": interval.low if interval else None,
            "speedup_vs_fp32_ci_high": interval.high if interval else None,
            "speedup_ci_method": interval.method if interval else NO_INTERVAL,
        }


@dataclass(frozen=True)
class TimedRounds:
    """A row's p50 per timing cycle, and which timing group those cycles belong to (cycle numbers of
    two groups, timed at different moments, must never be paired)."""

    group: int
    p50_ms: Mapping[int, float]


def paired_speedup(reference: TimedRounds, row: TimedRounds) -> Speedup | None:
    """The median over their common cycles of reference p50 / row p50; None when they were timed in
    different groups or share fewer than `MIN_PAIRED_CYCLES` cycles."""
    if reference.group != row.group:
        return None
    common = sorted(set(reference.p50_ms) & {c for c, p50 in row.p50_ms.items() if p50 > 0})
    if len(common) < MIN_PAIRED_CYCLES:
        return None
    ratios = [reference.p50_ms[c] / row.p50_ms[c] for c in common]
    return Speedup(
        statistics.median(ratios), f"paired: median of {len(common)} per-cycle p50 ratios", median_interval(ratios)
    )


def speedup_of(
    reference_p50_ms: float,
    p50_ms: float,
    reference_rounds: TimedRounds | None = None,
    rounds: TimedRounds | None = None,
) -> Speedup | None:
    """Paired by cycle where both sides' cycles are known and shared, else the ratio of the p50s."""
    if p50_ms <= 0:
        return None
    if reference_rounds is not None and rounds is not None:
        paired = paired_speedup(reference_rounds, rounds)
        if paired is not None:
            return paired
    return Speedup(reference_p50_ms / p50_ms, "p50 ratio")


def group_of(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A row's comparison group (`GROUP_COLUMNS`); a row from before shape sweeps is at the suite's size."""
    return (*(row[c] for c in GROUP_COLUMNS[:-1]), row.get("input_size") or "")


class SameRunReference:
    """The reference of each group seen so far in this run: its p50, and its cycles when timed here."""

    def __init__(self, finished_rows: Iterable[Mapping[str, Any]] = ()) -> None:
        self._p50: dict[tuple[Any, ...], float] = {}
        self._rounds: dict[tuple[Any, ...], TimedRounds] = {}
        for row in finished_rows:  # a resumed run: the reference's cycles are gone with its session
            if (row.get("backend"), row.get("precision")) == REFERENCE and row.get("status") == "ok":
                self._p50[group_of(row)] = float(row["latency_p50_ms"])

    def speedup(
        self, group: tuple[Any, ...], backend: str, precision: str, p50_ms: float, rounds: TimedRounds | None = None
    ) -> Speedup | None:
        """This row's speedup, paired by cycle where it can be; a reference row sets its group's (and is
        1.0 itself)."""
        if (backend, precision) == REFERENCE:
            self._p50[group] = p50_ms
            self._rounds.pop(group, None)
            if rounds is not None:
                self._rounds[group] = rounds
        reference = self._p50.get(group)
        return None if reference is None else speedup_of(reference, p50_ms, self._rounds.get(group), rounds)
