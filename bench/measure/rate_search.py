"""The server scenario's search: the highest rate whose p99 stays under the bound, by bracketing, bisection
and a confirmation run (bench/measure/scenarios.py's docstring gives the method and its limits)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.measure.scenarios import (
    GROWTH,
    MAX_CONFIRMATIONS,
    RATE_CEILING,
    RATE_FLOOR,
    SEARCH_TOLERANCE,
    ServerRun,
)

PROBE, CONFIRM = "probe", "confirm"


@dataclass
class RateSearch:
    """The highest rate (queries a second) whose p99 stays under `bound_ms`: bracketing from `start`, then
    bisection to `tolerance`, then confirmation (module docstring). Stepped from outside (`next_step`,
    `observe`), so that the searches of several backends can take turns.

    A confirmation run that fails counts as a failed probe at its rate: the search goes on below it and
    confirms again, up to `confirmations` times; the last attempt stands (`unconfirmed`) when none passed."""

    bound_ms: float
    start: float
    tolerance: float = SEARCH_TOLERANCE
    confirmations: int = MAX_CONFIRMATIONS
    probes: list[ServerRun] = field(default_factory=list)  # every run of the search, confirmations included
    attempts: list[ServerRun] = field(default_factory=list)  # the confirmation runs, in order

    def _lowest_failing(self) -> ServerRun | None:
        failed = [run for run in self.probes if not run.passed(self.bound_ms)]
        return min(failed, key=lambda run: run.rate) if failed else None

    def highest_passing(self) -> ServerRun | None:
        """The answer so far: the fastest probe that passed below every failed one."""
        failing = self._lowest_failing()
        passed = [
            run for run in self.probes if run.passed(self.bound_ms) and (failing is None or run.rate < failing.rate)
        ]
        return max(passed, key=lambda run: run.rate) if passed else None

    def next_rate(self) -> float | None:
        """The next probe's rate; None: the bracket is closed (or the search left its range)."""
        if not self.probes:
            return self.start
        low, high = self.highest_passing(), self._lowest_failing()
        if high is None:
            grown = low.rate * GROWTH if low is not None else self.start
            return grown if grown <= self.start * RATE_CEILING else None
        if low is None:
            halved = high.rate / 2
            return halved if halved >= self.start / RATE_FLOOR else None
        if high.rate - low.rate <= self.tolerance * low.rate:
            return None
        return (low.rate + high.rate) / 2

    def next_step(self) -> tuple[str, float] | None:
        """(PROBE, rate), (CONFIRM, rate), or None: the search is over."""
        rate = self.next_rate()
        if rate is not None:
            return PROBE, rate
        found = self.highest_passing()
        if found is None or self.confirmed is not None or len(self.attempts) >= self.confirmations:
            return None
        return CONFIRM, found.rate

    def observe(self, run: ServerRun, step: str = PROBE) -> None:
        self.probes.append(run)
        if step == CONFIRM:
            self.attempts.append(run)

    @property
    def confirmed(self) -> ServerRun | None:
        """The confirmation run that passed, if one did."""
        passed = [run for run in self.attempts if run.passed(self.bound_ms)]
        return passed[-1] if passed else None

    def probe_at(self, rate: float) -> ServerRun | None:
        """The search's own probe at `rate` (not a confirmation)."""
        confirmations = {id(run) for run in self.attempts}
        return next((run for run in self.probes if run.rate == rate and id(run) not in confirmations), None)

    def at_ceiling(self) -> bool:
        """No probe failed up to the highest rate the search tries."""
        return self.next_rate() is None and self._lowest_failing() is None and bool(self.probes)


def search_rate(
    run: Callable[[float, int], ServerRun], bound_ms: float, start: float, tolerance: float, seed: int = 0
) -> RateSearch:
    """A whole search, one run after the other (`run(rate, seed)`): what one backend alone does. Every
    probe replays the arrivals of `seed`; the k-th confirmation draws those of `seed + 1 + k`."""
    search = RateSearch(bound_ms, start, tolerance)
    while (step := search.next_step()) is not None:
        kind, rate = step
        search.observe(run(rate, seed if kind == PROBE else seed + 1 + len(search.attempts)), kind)
    return search
