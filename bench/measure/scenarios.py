"""The load generator of the scenarios beyond single-stream, after MLPerf Inference's LoadGen: offline
(how many images a second a session sustains) and server (Poisson arrivals at a rate, each query's
latency from its arrival to its completion, queueing included; the highest rate whose p99 stays under a
bound, found by search and confirmed by a run at that rate). Runtime-free: it drives plain callables.

A *caller* is one blocking inference of a ready batch (`Callable[[], object]`); a session hands out as
many as it runs at once (`bench.backend.Session.callers`: N requests of one OpenVINO compiled model, N
ONNX Runtime sessions, one torch module), and each gets a thread of its own here. Threads are enough:
the runtimes release the GIL inside their kernels, and every time is read with `time.perf_counter_ns`.
A single caller calls from the calling thread instead (offline, and a one-server queue that waits for
each arrival itself): torch's OpenMP pool belongs to the thread that made it, and a unet called from a
second thread ran 60% slower on 2 cores (9.3 against 14.8 ms a call, AMD EPYC) while the first pool's
threads still spun.

- `run_offline`: every caller calls back to back for `duration_s`; the sustained rate is the sum over
  callers of their images over their own window (the start to the end of their last call), so a caller
  that finished its last call early is not charged for the others' tails.
- `run_server`: arrival times are drawn once per seed (`poisson_arrivals`: exponential gaps of mean
  1 / rate) and dispatched at those times into one queue that the callers serve first come, first served.
  A query's latency counts from its *scheduled* arrival, so a dispatcher that falls behind adds to the
  latency instead of thinning the load. A probe that can no longer pass (more of its queries over the
  bound than a p99 allows) stops early, queued queries dropped.
- `RateSearch`: the highest rate whose p99 stays under the bound. From half the offline capacity it grows
  x1.5 until a probe fails (or halves until one passes, down to a 16th of the capacity), then bisects until
  the bracket is within `tolerance` of its lower end; the answer is the highest rate that passed. Every
  probe of one search replays the same draw of arrivals scaled to its rate ("common random numbers"): a
  first-come first-served queue's latencies only grow when its arrivals are squeezed together, so the p99
  the search sees rises with the rate and the bisection has one crossing to find. A confirmation run at
  that rate draws fresh arrivals; one whose p99 is over the bound counts as a failed probe, and the search
  goes on below it (up to three confirmations).

Limits. A p99 from a few hundred queries is a rough number: for an ideal queue (deterministic service,
2 to 8 servers, the bound at twice the service time) the rate at which 300 to 1000 queries' p99 crosses
the bound scatters by +-10 to 25% from one draw of arrivals to another (tests/bench/measure/
test_scenarios.py computes these); MLPerf asks for 270,336 queries for its p99. `--scenario-time` sets how
long each probe and each offline setting runs (and so how many queries a probe has).

Over 400 lines (457): the two load generators, the search over one of them and the row records of what
they measured are one method, read together.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.measure.contention import Contention

Caller = Callable[[], object]

SINGLE_STREAM, OFFLINE, SERVER = "single-stream", "offline", "server"
SCENARIOS = (SINGLE_STREAM, OFFLINE, SERVER)
DEFAULT_BATCH_SIZES = (1, 2, 4, 8)  # offline: the batch sizes every backend's settings are tried at
DEFAULT_DURATION_S = 2.0  # each offline setting and each server probe (--scenario-time)
MIN_SERVER_QUERIES = 100  # a probe has at least this many queries, however slow the rate
SEARCH_TOLERANCE = 0.05  # the search stops when its bracket is within 5% of its lower end
START_SHARE = 0.5  # the search starts at half the offline capacity at the run's batch size
GROWTH = 1.5  # and grows by this factor until a probe fails (halving until one passes)
RATE_CEILING = 64.0  # it goes at most this factor above its start
RATE_FLOOR = 8.0  # and this factor below it (a 16th of the capacity: no queueing left to lose)
MAX_CONFIRMATIONS = 3  # a failed confirmation is a failed probe: the search goes on below it, this often
WARMUP_CALLS = 2  # untimed calls of every caller before each offline setting and each probe


@dataclass(frozen=True)
class ScenarioConfig:
    """`--scenario` and its settings; single-stream (the default) is the ordinary timing and nothing more."""

    name: str = SINGLE_STREAM
    latency_bound_ms: float | None = None  # server: the p99 bound (--latency-bound)
    duration_s: float = DEFAULT_DURATION_S  # --scenario-time
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES  # offline (--offline-batch-sizes)
    min_queries: int = MIN_SERVER_QUERIES
    tolerance: float = SEARCH_TOLERANCE
    seed: int = 0
    warmup_calls: int = WARMUP_CALLS

    @property
    def active(self) -> bool:
        return self.name != SINGLE_STREAM

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ScenarioConfig:
        """As run.json keeps it (absent: single-stream, as every run before scenarios existed)."""
        if not data:
            return cls()
        return cls(**{**data, "batch_sizes": tuple(data.get("batch_sizes", DEFAULT_BATCH_SIZES))})


# ---------------------------------------------------------------- running callers in threads


class _Threads:
    """One thread per caller; the first exception raised in any of them stops the others and is raised
    again in the calling thread."""

    def __init__(self, count: int, parties: int) -> None:
        self.count = count
        self.barrier = threading.Barrier(parties, action=self._start)
        self.stop = threading.Event()
        self.start_ns = 0
        self.errors: list[BaseException] = []

    def _start(self) -> None:
        self.start_ns = time.perf_counter_ns()

    def run(self, work: Callable[[int], None], main: Callable[[], None] | None = None) -> None:
        if self.count == 1 and main is None:  # one caller calls from this thread (`on_this_thread`)
            self._guarded(work, 0)
            if self.errors:
                raise self.errors[0]
            return
        threads = [threading.Thread(target=self._guarded, args=(work, i), daemon=True) for i in range(self.count)]
        for thread in threads:
            thread.start()
        try:
            if main is not None:
                main()
        except BaseException as exc:
            self._fail(exc)
        for thread in threads:
            thread.join()
        if self.errors:
            raise self.errors[0]

    def _guarded(self, work: Callable[[int], None], index: int) -> None:
        try:
            work(index)
        except threading.BrokenBarrierError:
            if not self.errors:
                raise
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()
        self.barrier.abort()


# ---------------------------------------------------------------- offline


@dataclass(frozen=True)
class OfflineRun:
    """One offline measurement: `callers` callers of `batch_size` images each, back to back."""

    images_per_s: float
    calls: int
    batch_size: int
    callers: int
    seconds: float  # the longest caller's window


def run_offline(
    callers: Sequence[Caller], batch_size: int, duration_s: float, warmup_calls: int = WARMUP_CALLS
) -> OfflineRun:
    """Every caller calls for `duration_s` (after `warmup_calls` untimed calls each, all starting together);
    the rate is the sum of each caller's images over its own window."""
    if not callers:
        raise ValueError("no callers")
    count = len(callers)
    calls, ends = [0] * count, [0] * count
    runner = _Threads(count, count)

    def work(index: int) -> None:
        call = callers[index]
        for _ in range(warmup_calls):
            call()
        runner.barrier.wait()
        deadline = runner.start_ns + int(duration_s * 1e9)
        done = 0
        while not runner.stop.is_set():
            call()
            done += 1
            if time.perf_counter_ns() >= deadline:
                break
        calls[index], ends[index] = done, time.perf_counter_ns()

    runner.run(work)
    windows = [(end - runner.start_ns) / 1e9 for end in ends]
    rate = sum(n * batch_size / w for n, w in zip(calls, windows) if w > 0)
    return OfflineRun(rate, sum(calls), batch_size, count, max(windows))


# ---------------------------------------------------------------- server


def poisson_arrivals(rate: float, count: int, seed: int) -> np.ndarray:
    """`count` arrival times in seconds from the start: exponential gaps of mean 1 / `rate`, one draw per
    seed whatever the rate (the same unit-rate draw, scaled)."""
    unit = np.cumsum(np.random.default_rng(seed).exponential(1.0, count))
    return unit / rate


def over_bound_limit(queries: int) -> int:
    """How many of `queries` latencies over the bound put the p99 over it for certain: numpy's p99 lies
    between the sorted values j and j+1, j = floor(0.99 (n - 1)), so n - j values over the bound put both
    of them there."""
    return queries - math.floor(0.99 * (queries - 1))


@dataclass(frozen=True)
class ServerRun:
    """One server run at `rate` queries a second: the latency percentiles of its completed queries."""

    rate: float
    queries: int  # asked
    completed: int
    p50_ms: float
    p99_ms: float
    seconds: float  # from the start to the last completion
    stopped_early: bool = False  # its p99 was over the bound for certain: the rest was not run

    def passed(self, bound_ms: float) -> bool:
        return not self.stopped_early and self.p99_ms <= bound_ms


def run_server(
    callers: Sequence[Caller],
    rate: float,
    queries: int,
    seed: int = 0,
    bound_ms: float | None = None,
    warmup_calls: int = WARMUP_CALLS,
) -> ServerRun:
    """`queries` queries arriving at `rate` a second (Poisson, `seed`), served by the callers first come,
    first served; each latency from the query's scheduled arrival to the end of its call. With `bound_ms`,
    the run stops as soon as its p99 is over the bound for certain (`over_bound_limit`)."""
    if not callers or rate <= 0 or queries < 1:
        raise ValueError("a server run needs callers, a rate above 0 and at least one query")
    arrivals = (poisson_arrivals(rate, queries, seed) * 1e9).astype(np.int64)
    latencies = np.full(queries, -1, np.int64)
    bound_ns = None if bound_ms is None else int(bound_ms * 1e6)
    limit, over = over_bound_limit(queries), [0]
    if len(callers) == 1:  # one server: this thread waits for each arrival and serves it (`on_this_thread`)
        start_ns = _serve_on_this_thread(callers[0], arrivals, latencies, bound_ns, limit, warmup_calls)
        return _server_run(rate, queries, arrivals, latencies, start_ns, bound_ns, limit)
    lock = threading.Lock()
    work_queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    runner = _Threads(len(callers), len(callers) + 1)

    def serve(index: int) -> None:
        call = callers[index]
        for _ in range(warmup_calls):
            call()
        runner.barrier.wait()
        while (item := work_queue.get()) is not None:
            if runner.stop.is_set():
                continue  # stopped early (or a caller failed): the queue is drained, not served
            call()
            latency = time.perf_counter_ns() - runner.start_ns - int(arrivals[item])
            latencies[item] = latency
            if bound_ns is not None and latency > bound_ns:
                with lock:
                    over[0] += 1
                    if over[0] >= limit:
                        runner.stop.set()

    def dispatch() -> None:
        try:
            runner.barrier.wait()
            for item, at in enumerate(arrivals):
                if runner.stop.is_set():
                    break
                delay = runner.start_ns + int(at) - time.perf_counter_ns()
                if delay > 0:
                    time.sleep(delay / 1e9)
                work_queue.put(item)
        finally:
            for _ in callers:
                work_queue.put(None)

    runner.run(serve, dispatch)
    return _server_run(rate, queries, arrivals, latencies, runner.start_ns, bound_ns, limit)


def _serve_on_this_thread(
    call: Caller, arrivals: np.ndarray, latencies: np.ndarray, bound_ns: int | None, limit: int, warmup_calls: int
) -> int:
    """A one-server queue without threads: each query served when it has arrived and the previous one is
    done (first come, first served, as the threaded queue does), its latency written into `latencies`;
    stops once `limit` latencies are over the bound. Returns the start (ns)."""
    for _ in range(warmup_calls):
        call()
    start_ns, over = time.perf_counter_ns(), 0
    for item, at in enumerate(arrivals):
        delay = start_ns + int(at) - time.perf_counter_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        call()
        latencies[item] = time.perf_counter_ns() - start_ns - int(at)
        if bound_ns is not None and latencies[item] > bound_ns:
            over += 1
            if over >= limit:
                break
    return start_ns


def _server_run(
    rate: float,
    queries: int,
    arrivals: np.ndarray,
    latencies: np.ndarray,
    start_ns: int,
    bound_ns: int | None,
    limit: int,
) -> ServerRun:
    """The ServerRun of the completed queries' latencies (-1: not served, the run stopped early)."""
    done = latencies[latencies >= 0]
    if done.size == 0:
        raise RuntimeError("no query completed")
    p50, p99 = np.percentile(done / 1e6, [50, 99])
    last = int(start_ns + (arrivals[latencies >= 0] + done).max())
    stopped = bound_ns is not None and int((done > bound_ns).sum()) >= limit
    return ServerRun(rate, queries, int(done.size), float(p50), float(p99), (last - start_ns) / 1e9, stopped)


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


# ---------------------------------------------------------------- the row's records


def _quality(contention: Contention | None) -> tuple[str | None, float | None, float | None]:
    if contention is None:
        return None, None, None
    return contention.timing_quality, contention.reference_slowdown, contention.cpu_other_pct


@dataclass(frozen=True)
class OfflineResult:
    """The offline scenario of one cell: its best setting, measured again after it was chosen (so the
    choice's own luck does not inflate the number), and how quiet the machine was meanwhile."""

    status: str  # ok | error: <cause>
    images_per_s: float | None = None  # the confirmation run of the best setting
    setting: str | None = None  # that setting, in the runtime's words
    batch_size: int | None = None
    callers: int | None = None
    search_images_per_s: float | None = None  # the best setting's rate when it was chosen
    tried: tuple[tuple[str, float], ...] = ()  # every setting measured and its images/s
    contention: Contention | None = None  # over every offline turn of the cell
    failed: tuple[tuple[str, str], ...] = ()  # settings whose turn raised, and why (also in the run's log)

    def columns(self) -> dict[str, Any]:
        quality, slowdown, other = _quality(self.contention)
        return {
            "offline_status": self.status,
            "offline_ips": self.images_per_s,
            "offline_setting": self.setting,
            "offline_batch_size": self.batch_size,
            "offline_callers": self.callers,
            "offline_search_ips": self.search_images_per_s,
            "offline_settings_tried": len(self.tried),
            "offline_settings_failed": len(self.failed),
            "offline_timing_quality": quality,
            "offline_reference_slowdown": slowdown,
            "offline_cpu_other_pct": other,
        }

    def details(self) -> dict[str, Any]:
        return {
            "offline_settings": [{"setting": s, "images_per_s": ips} for s, ips in self.tried],
            "offline_settings_failed": [{"setting": s, "error": error} for s, error in self.failed],
        }


@dataclass(frozen=True)
class ServerResult:
    """The server scenario of one cell: the highest rate found under the bound and confirmed, in images a
    second (queries times the batch size), the p50 and p99 of the confirmation run at that rate, and the
    search's own p99 there."""

    status: str  # ok | unconfirmed: ... | not met: ... | ceiling: ... | error: <cause>
    latency_bound_ms: float
    max_rate_ips: float | None = None  # the rate of the confirmation that passed (unconfirmed: the last tried)
    p50_ms: float | None = None  # that confirmation run's
    p99_ms: float | None = None
    search_p99_ms: float | None = None  # the search's probe at the rate found
    queries: int | None = None  # per probe and in the confirmation run
    probes: int = 0  # runs of the search, confirmations included
    confirmations: int = 0  # confirmation runs (a failed one sends the search on below it)
    setting: str | None = None  # what served the queries (the best offline setting at the run's batch size)
    probe_rates: tuple[tuple[float, float, bool], ...] = ()  # (queries/s, p99 ms, passed) of every probe
    contention: Contention | None = None

    def columns(self) -> dict[str, Any]:
        quality, slowdown, other = _quality(self.contention)
        return {
            "server_status": self.status,
            "server_latency_bound_ms": self.latency_bound_ms,
            "server_max_rate_ips": self.max_rate_ips,
            "server_p50_ms": self.p50_ms,
            "server_p99_ms": self.p99_ms,
            "server_search_p99_ms": self.search_p99_ms,
            "server_queries": self.queries,
            "server_probes": self.probes,
            "server_confirmations": self.confirmations,
            "server_setting": self.setting,
            "server_timing_quality": quality,
            "server_reference_slowdown": slowdown,
            "server_cpu_other_pct": other,
        }

    def details(self) -> dict[str, Any]:
        return {
            "server_probes": [
                {"queries_per_s": rate, "p99_ms": p99, "passed": passed} for rate, p99, passed in self.probe_rates
            ]
        }
