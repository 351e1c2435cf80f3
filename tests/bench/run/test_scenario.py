"""A group's scenario driven from the parent, on fake cells whose "workers" answer at once: the backends
take turns, the best setting is confirmed, the server search is stepped per backend, and a failure ends
one backend's scenario with an `error:` status while the others go on."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.backend import ThroughputSetting
from bench.measure.scenario_results import OfflineResult, ServerResult
from bench.measure.scenarios import OfflineRun, ScenarioConfig, ServerRun, poisson_arrivals
from bench.run import stages
from bench.run.isolation import WorkerFailed
from bench.run.scenario import run_scenario


class FakeKernel:
    reference_ms = 1.0

    def __init__(self) -> None:
        self.readings = 0

    def measure(self, keep: bool = True) -> float:
        self.readings += 1
        return 1.0

    def slowdown(self, ms: float) -> float:
        return ms / self.reference_ms


@dataclass
class FakeTiming:
    settle_s: float = 0.0


@dataclass
class FakeSpec:
    backend: str
    scenario: ScenarioConfig
    batch_size: int = 1
    timing: FakeTiming = field(default_factory=FakeTiming)

    @property
    def label(self) -> str:
        return f"s / m / {self.backend}"


class FakeWorker:
    pid = 0

    def __init__(self) -> None:
        self.alive = True


def _ideal_p99(rate: float, queries: int, seed: int, service_s: float, servers: int) -> tuple[float, float]:
    free, latencies = [0.0] * servers, []
    for arrival in poisson_arrivals(rate, queries, seed):
        done = max(arrival, heapq.heappop(free)) + service_s
        heapq.heappush(free, done)
        latencies.append(done - arrival)
    p50, p99 = np.percentile(np.asarray(latencies) * 1e3, [50, 99])
    return float(p50), float(p99)


class FakeBudget:
    """Answers the worker's stages: a backend of `service_s` a call whatever the batch, whose settings are
    1 and 2 callers per batch size; `fail` names a stage (and setting) that raises or kills the worker."""

    def __init__(self, log: list[str], name: str, service_s: float, fail: tuple[str, Any] | None = None) -> None:
        self.log, self.name, self.service_s, self.fail = log, name, service_s, fail
        self.spent, self.seconds = 0.0, 100.0
        self.settings: list[ThroughputSetting] = []

    def call(self, worker: FakeWorker, function: Any, spec: FakeSpec, *args: Any) -> Any:
        if function is stages.scenario_settings:
            sizes = spec.scenario.batch_sizes if spec.scenario.name == "offline" else (spec.batch_size,)
            self.settings = [ThroughputSetting(b, c) for b in sizes for c in (1, 2)]
            return self.settings
        if function is stages.end_scenario:
            return None
        if self.fail is not None and self.fail[0] == function.__name__ and self.fail[1] in (None, args[0]):
            if self.fail[1] is None:
                worker.alive = False
                raise WorkerFailed("worker died (killed by SIGKILL)")
            raise WorkerFailed("RuntimeError: batch too large")
        if function is stages.offline_turn:
            setting = self.settings[args[0]]
            self.log.append(f"{self.name}:{args[0]}")
            rate = setting.batch_size * setting.callers / self.service_s
            return OfflineRun(rate, 10, setting.batch_size, setting.callers, 1.0)
        if function is stages.server_turn:
            index, rate, queries, seed = args
            self.log.append(f"{self.name}:probe")
            p50, p99 = _ideal_p99(rate, queries, seed, self.service_s, self.settings[index].callers)
            return ServerRun(rate, queries, queries, p50, p99, 1.0)
        raise AssertionError(function)


class FakeCell:
    def __init__(self, name: str, scenario: ScenarioConfig, log: list[str], service_s: float, fail=None) -> None:
        self.spec = FakeSpec(name, scenario)
        self.worker = FakeWorker()
        self.budget = FakeBudget(log, name, service_s, fail)
        self.failure = None
        self.scenario: OfflineResult | ServerResult | None = None


def test_offline_takes_turns_confirms_the_best_and_records_every_setting():
    log: list[str] = []
    config = ScenarioConfig("offline", batch_sizes=(1, 4))
    cells = [FakeCell("a", config, log, 0.010), FakeCell("b", config, log, 0.020)]
    kernel = FakeKernel()
    run_scenario(cells, kernel, lambda line: None)  # type: ignore[arg-type]
    # one turn per backend per cycle: 4 settings each, then one confirmation each
    assert sorted(log[:2]) == ["a:0", "b:0"] and sorted(log[6:8]) == ["a:3", "b:3"]
    assert sorted(log[8:]) == ["a:3", "b:3"] and len(log) == 10
    a, b = (cell.scenario for cell in cells)
    assert isinstance(a, OfflineResult) and isinstance(b, OfflineResult)
    assert a.status == "ok" and a.images_per_s == 800.0 and a.setting == "batch 4, 2 callers"
    assert (a.batch_size, a.callers, len(a.tried)) == (4, 2, 4) and b.images_per_s == 400.0
    assert a.contention is not None and a.contention.timing_quality.startswith(("ok", "unmeasured"))
    assert kernel.readings == 10 + 1  # before every turn, and once after the scenario


def test_a_failing_setting_is_skipped_and_a_dead_worker_ends_only_its_backends_scenario():
    log: list[str] = []
    config = ScenarioConfig("offline", batch_sizes=(1, 4))
    lines: list[str] = []
    cells = [
        FakeCell("skips", config, log, 0.010, fail=("offline_turn", 3)),
        FakeCell("dies", config, log, 0.010, fail=("offline_turn", None)),
        FakeCell("fine", config, log, 0.010),
    ]
    run_scenario(cells, FakeKernel(), lines.append)  # type: ignore[arg-type]
    skips, dies, fine = (cell.scenario for cell in cells)
    assert isinstance(skips, OfflineResult) and skips.status == "ok" and skips.setting == "batch 4, 1 caller"
    assert skips.failed == (("batch 4, 2 callers", "RuntimeError: batch too large"),)
    assert skips.columns()["offline_settings_failed"] == 1
    assert any("batch 4, 2 callers failed: RuntimeError: batch too large" in line for line in lines)
    assert isinstance(dies, OfflineResult) and dies.status == "error: worker died (killed by SIGKILL)"
    assert dies.images_per_s is None and dies.columns()["offline_ips"] is None
    assert isinstance(fine, OfflineResult) and fine.images_per_s == 800.0


def test_server_searches_each_backend_in_turns_and_confirms_its_rate():
    """Service 10 ms, best setting 2 callers: capacity 200 queries/s, the search starts at 100; bound 40 ms
    (4 S): M/D/2 keeps p99 under it until about 85% of capacity."""
    log: list[str] = []
    config = ScenarioConfig("server", latency_bound_ms=40.0, duration_s=2.0)
    cells = [FakeCell("a", config, log, 0.010), FakeCell("b", config, log, 0.010)]
    run_scenario(cells, FakeKernel(), lambda line: None)  # type: ignore[arg-type]
    probes = [entry for entry in log if entry.endswith("probe")]
    assert all({probes[i], probes[i + 1]} == {"a:probe", "b:probe"} for i in range(0, len(probes), 2))  # in turns
    a = cells[0].scenario
    assert isinstance(a, ServerResult) and a.status == "ok" and a.setting == "batch 1, 2 callers"
    assert a.max_rate_ips is not None and 0.6 * 200 <= a.max_rate_ips <= 200
    assert a.p99_ms is not None and a.search_p99_ms is not None and a.search_p99_ms <= 40.0
    assert a.queries == 100 * 2 and a.probes == len(a.probe_rates) >= 4  # half the capacity x 2 s
    assert a.confirmations >= 1 and a.columns()["server_latency_bound_ms"] == 40.0


def test_a_bound_no_rate_meets_says_so_and_a_failed_probe_is_an_error():
    log: list[str] = []
    tight = ScenarioConfig("server", latency_bound_ms=5.0)  # under the 10 ms service time itself
    never = FakeCell("never", tight, log, 0.010)
    broken = FakeCell("broken", tight, log, 0.010, fail=("server_turn", 1))  # its best setting
    run_scenario([never, broken], FakeKernel(), lambda line: None)  # type: ignore[arg-type]
    assert isinstance(never.scenario, ServerResult) and never.scenario.status.startswith("not met: the lowest rate")
    assert never.scenario.max_rate_ips is None
    assert isinstance(broken.scenario, ServerResult)
    assert broken.scenario.status == "error: RuntimeError: batch too large" and broken.scenario.probes == 0
