"""One ranked cell of a decision, and its numbers in words: its name, a speedup or drift with the 95%
interval in brackets. Shared by the decision's own sentences, the terminal lines and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.decide.budgets import BudgetCheck
from bench.results.bounds import number


@dataclass(frozen=True)
class Entry:
    """One cell of the group, where it ranks and why."""

    cell: str
    backend: str
    precision: str
    options: str
    verdict: str  # one of ORDER
    reason: str
    checks: tuple[BudgetCheck, ...] = ()
    flags: tuple[str, ...] = ()  # int8 that does not pay, whatever the verdict
    speedup: float | None = None
    speedup_low: float | None = None
    speedup_high: float | None = None
    latency_p50_ms: float | None = None
    throughput_ips: float | None = None
    offline_ips: float | None = None  # --scenario offline: what throughput ranks on where the group has it
    offline_setting: str | None = None
    quality_metric: str = "miou"
    quality_drift: float | None = None
    quality_drift_low: float | None = None
    quality_drift_high: float | None = None
    model_size_bytes: float | None = None
    backend_rss_mib: float | None = None


def winner_name(entry: Entry) -> str:
    """`backend precision`: the options a cell ran with are in decision.json and the report's table."""
    return f"{entry.backend} {entry.precision}"


def bracket(low: float | None, high: float | None, fmt: Callable[[float], str] = "{:.2f}".format) -> str:
    """` [low, high]`, or "" where the number has no interval."""
    return f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""


def speed_text(entry: Entry) -> str:
    if entry.speedup is None:
        return "no speedup (no fp32 eager row)"
    return f"{entry.speedup:.2f}x fp32 eager{bracket(entry.speedup_low, entry.speedup_high)}"


def drift_text(entry: Entry) -> str:
    if entry.quality_drift is None:
        return ""
    interval = bracket(entry.quality_drift_low, entry.quality_drift_high, number)
    return f"{entry.quality_metric}_drift {number(entry.quality_drift)}{interval}"
