"""The scenarios beyond single-stream (`--scenario offline|server`, docs/scenarios.md) of one comparison
group, driven from the parent after the group's single-stream timing and evaluation, before its profiles,
in each cell's measuring worker (the loaded session; `bench.run.stages`: `scenario_settings`,
`offline_turn`, `server_turn`). The load generator itself is `bench.measure.scenarios`.

The group's backends take turns, one measurement each per cycle in a seeded shuffled order, as timed
rounds do (`bench.run.rounds`), so a slow phase of the machine lands on all of them alike; every turn is
preceded by the settle pause and a reading of the reference kernel, its CPU accounting is read around it,
and one more kernel reading closes the scenario. The noise rules of single-stream rows then judge the
scenario's own turns (`bench.measure.contention.Contention`): `offline_timing_quality`,
`server_timing_quality`. Turns are not left out and timed again as single-stream cycles are (a server
search depends on its earlier probes); a noisy scenario says so instead.

- offline: every throughput setting of every backend (`Session.throughput_settings`) one turn each; then
  each backend's best is measured once more (a confirmation turn), and that is `offline_ips`.
- server: the settings at the run's batch size, one turn each; the best serves the queries, and its rate
  (the offline capacity) starts the search at half of it (`RateSearch`); every cycle each backend probes its
  next rate, or runs its confirmation at the rate found, with fresh arrivals (a failed one sends its search
  on below it).

A setting that raises in a turn is skipped (counted in `offline_settings_failed`, its error in
per_backend.json); a worker that dies, or a server probe that raises, ends that backend's scenario: its
status column reads `error: <cause>` and its other numbers (latency, quality) stand.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

from bench.backend import ThroughputSetting
from bench.measure.contention import Contention, CpuCounters, CpuWindows, load_average
from bench.measure.rate_search import PROBE, RateSearch
from bench.measure.reference_kernel import ReferenceKernel
from bench.measure.scenario_results import OfflineResult, ServerResult
from bench.measure.scenarios import OFFLINE, START_SHARE, OfflineRun
from bench.run import stages
from bench.run.cell import MeasuringCell, cause
from bench.run.isolation import WorkerFailed

SHUFFLE_SEED = 0


class ScenarioCell:
    """One cell's side of the group's scenario: its settings, what each turn measured, the readings taken
    around its turns, and the failure that ended its scenario (None while it goes on)."""

    def __init__(self, cell: MeasuringCell) -> None:
        self.cell = cell
        self.settings: list[ThroughputSetting] = []
        self.measured: list[tuple[int, OfflineRun]] = []  # (setting, its run)
        self.setting_errors: list[tuple[int, str]] = []
        self.confirmed: OfflineRun | None = None
        self.search: RateSearch | None = None
        self.queries = 0
        self.failure: str | None = None
        self.kernel_ms: list[float] = []
        self.windows: list[CpuWindows] = []
        self.loads: list[float] = []

    @property
    def live(self) -> bool:
        return self.failure is None

    def call(self, function: Callable[..., Any], *args: Any, kernel: ReferenceKernel | None = None) -> Any:
        """`function(context, spec, *args)` in the cell's worker; with `kernel`, a timed turn: the settle
        pause and a kernel reading before it, the CPU accounting around it. A worker that fails ends this
        cell's scenario (raised again for the caller to decide when the worker is still alive)."""
        cell = self.cell
        if kernel is not None:
            time.sleep(cell.spec.timing.settle_s)  # what ran before must stop spinning, as before a round
            self.kernel_ms.append(kernel.measure())
        before = CpuCounters.read(cell.worker.pid)
        try:
            result = cell.budget.call(cell.worker, function, cell.spec, *args)
        except WorkerFailed as exc:
            message = f"error: {cause(str(exc), cell.budget)}"
            if not cell.worker.alive:
                self.failure = message
                return None
            raise WorkerFailed(message) from None
        if kernel is not None:
            self.windows.append(CpuWindows.between(before, CpuCounters.read(cell.worker.pid)))
            if (load := load_average()) is not None:
                self.loads.append(load)
        return result

    def contention(self, kernel: ReferenceKernel) -> Contention | None:
        if not self.kernel_ms:
            return None
        load = max(self.loads) if self.loads else None
        return Contention.from_windows(CpuWindows.summed(self.windows), load, self.kernel_ms, kernel)

    def best(self) -> tuple[int, OfflineRun] | None:
        return max(self.measured, key=lambda found: found[1].images_per_s) if self.measured else None

    def tried(self) -> tuple[tuple[str, float], ...]:
        return tuple((self.settings[i].describe(), run.images_per_s) for i, run in self.measured)


def run_scenario(cells: list[MeasuringCell], kernel: ReferenceKernel, log: Callable[[str], None]) -> None:
    """The group's scenario; each live cell's `scenario` record set (its status says when it failed)."""
    live = [cell for cell in cells if cell.failure is None]
    if not live:
        return
    config = live[0].spec.scenario
    group = [ScenarioCell(cell) for cell in live]
    log(f"{config.name} scenario, {len(group)} backend(s) in turns")
    order = random.Random(SHUFFLE_SEED)
    for member in group:
        try:
            member.settings = member.call(stages.scenario_settings) or []
        except WorkerFailed as exc:
            member.failure = str(exc)
    _settings_pass(group, kernel, order)
    if config.name == OFFLINE:
        _confirm_offline(group, kernel, order)
    else:
        _search(group, kernel, order)
    time.sleep(live[0].spec.timing.settle_s)
    closing = kernel.measure()  # the machine's speed after the scenario, for every cell of the group
    for member in group:
        member.kernel_ms.append(closing)
        if member.cell.worker.alive:
            try:
                member.call(stages.end_scenario)
            except WorkerFailed:
                pass  # the profile after it will say so if the worker is lost
        result = _offline_result(member, kernel) if config.name == OFFLINE else _server_result(member, kernel)
        member.cell.scenario = result
        for index, error in member.setting_errors:
            log(f"{member.cell.spec.label}: {config.name}: {member.settings[index].describe()} failed: {error}")


def _cycles(group: list[ScenarioCell], order: random.Random, turn: Callable[[ScenarioCell], bool]) -> None:
    """Cycles of turns, each live cell's `turn` once per cycle in a shuffled order, until no turn is left
    (`turn` returns False when the cell had none)."""
    while True:
        due = [member for member in group if member.live]
        order.shuffle(due)
        took = [turn(member) for member in due]
        if not any(took):
            return


def _settings_pass(group: list[ScenarioCell], kernel: ReferenceKernel, order: random.Random) -> None:
    """Every setting of every cell once, cycle k taking each cell's setting k."""
    next_setting = {id(member): 0 for member in group}

    def turn(member: ScenarioCell) -> bool:
        index = next_setting[id(member)]
        if index >= len(member.settings):
            return False
        next_setting[id(member)] = index + 1
        try:
            run = member.call(stages.offline_turn, index, kernel=kernel)
        except WorkerFailed as exc:  # this setting failed, the worker serves on: the next setting
            member.setting_errors.append((index, str(exc).removeprefix("error: ")))
            return True
        if run is not None:
            member.measured.append((index, run))
        return True

    _cycles(group, order, turn)


def _confirm_offline(group: list[ScenarioCell], kernel: ReferenceKernel, order: random.Random) -> None:
    """Each cell's best setting measured once more: the choice of the best of several noisy numbers is
    biased up, a new measurement of the chosen one is not."""
    done: set[int] = set()

    def turn(member: ScenarioCell) -> bool:
        best = member.best()
        if id(member) in done or best is None:
            return False
        done.add(id(member))
        try:
            member.confirmed = member.call(stages.offline_turn, best[0], kernel=kernel)
        except WorkerFailed as exc:
            member.failure = str(exc)
        return True

    _cycles(group, order, turn)


def _search(group: list[ScenarioCell], kernel: ReferenceKernel, order: random.Random) -> None:
    """Each cell's rate search and its confirmations, one run per cell per cycle."""
    for member in group:
        best = member.best()
        if best is None or member.failure is not None:
            continue
        config, capacity = member.cell.spec.scenario, best[1].images_per_s / best[1].batch_size
        assert config.latency_bound_ms is not None  # RunConfig.validate: --scenario server needs it
        member.search = RateSearch(config.latency_bound_ms, START_SHARE * capacity, config.tolerance)
        member.queries = max(config.min_queries, math.ceil(START_SHARE * capacity * config.duration_s))

    def turn(member: ScenarioCell) -> bool:
        search, best = member.search, member.best()
        step = search.next_step() if search is not None else None
        if search is None or best is None or step is None:
            return False
        kind, rate = step
        seed = member.cell.spec.scenario.seed  # probes: one draw; the k-th confirmation: a draw of its own
        seed += 0 if kind == PROBE else 1 + len(search.attempts)
        try:
            run = member.call(stages.server_turn, best[0], rate, member.queries, seed, kernel=kernel)
        except WorkerFailed as exc:
            member.failure = str(exc)
            return True
        if run is not None:
            search.observe(run, kind)
        return True

    _cycles(group, order, turn)


def _offline_result(member: ScenarioCell, kernel: ReferenceKernel) -> OfflineResult:
    best = member.best()
    tried, contention = member.tried(), member.contention(kernel)
    failed = tuple((member.settings[i].describe(), error) for i, error in member.setting_errors)
    if best is None:
        status = member.failure or _no_setting(member)
        return OfflineResult(status, tried=tried, failed=failed, contention=contention)
    setting = member.settings[best[0]]
    confirmed = member.confirmed.images_per_s if member.confirmed is not None else None
    return OfflineResult(
        member.failure or "ok",
        confirmed,
        setting.describe(),
        setting.batch_size,
        setting.callers,
        best[1].images_per_s,
        tried,
        contention,
        failed=failed,
    )


def _no_setting(member: ScenarioCell) -> str:
    if member.setting_errors:
        return f"error: every setting failed; the first: {member.setting_errors[0][1]}"
    return "error: the session offered no throughput setting"


def _server_result(member: ScenarioCell, kernel: ReferenceKernel) -> ServerResult:
    config = member.cell.spec.scenario
    bound = float(config.latency_bound_ms or 0.0)
    best, search, contention = member.best(), member.search, member.contention(kernel)
    setting = member.settings[best[0]] if best is not None else None
    probes = (
        tuple((run.rate * _batch(setting), run.p99_ms, run.passed(bound)) for run in search.probes) if search else ()
    )
    base = ServerResult(
        member.failure or "ok",
        bound,
        queries=member.queries or None,
        probes=len(probes),
        setting=setting.describe() if setting is not None else None,
        probe_rates=probes,
        contention=contention,
    )
    if best is None:
        return _with(base, status=member.failure or _no_setting(member))
    attempts = search.attempts if search is not None else []
    if not attempts:  # no rate passed, or the search ended before its confirmation
        if member.failure is not None or search is None or not search.probes:
            return base
        lowest = min(search.probes, key=lambda run: run.rate)
        return _with(
            base,
            status=f"not met: the lowest rate tried, {lowest.rate * _batch(setting):.3g} images/s, had p99 "
            f"{lowest.p99_ms:.1f} ms",
        )
    assert search is not None
    final = search.confirmed or attempts[-1]  # the rate stated is the one its numbers were confirmed at
    searched = search.probe_at(final.rate)
    result = _with(
        base,
        max_rate_ips=final.rate * _batch(setting),
        p50_ms=final.p50_ms,
        p99_ms=final.p99_ms,
        search_p99_ms=searched.p99_ms if searched is not None else None,
        confirmations=len(attempts),
    )
    if member.failure is not None:
        return result
    if search.confirmed is None:
        return _with(
            result,
            status=f"unconfirmed: {len(attempts)} confirmation runs had their p99 over the bound (the last: "
            f"{final.p99_ms:.1f} ms)",
        )
    if search.at_ceiling():
        return _with(
            result, status=f"ceiling: p99 stayed under the bound up to {final.rate * _batch(setting):.3g} images/s"
        )
    return result


def _batch(setting: ThroughputSetting | None) -> int:
    return setting.batch_size if setting is not None else 1


def _with(result: ServerResult, **changes: Any) -> ServerResult:
    from dataclasses import replace

    return replace(result, **changes)
