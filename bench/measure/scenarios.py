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

The search over the server runs is bench/measure/rate_search.py; the row records of what they measured,
bench/measure/scenario_results.py.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
