"""Process isolation: each piece of a cell's work runs in a worker process of its own, under one budget.

A worker that raises, crashes natively (abort, out-of-memory kill) or outlives the cell's time budget
yields a one-line message instead of taking the run down. A worker serves several calls in turn and
keeps state between them (`WorkerContext.state`), so a loaded session stays in the process that
times and evaluates it, and the parent can drive its timing one round at a time. A worker with a log
file writes everything third-party code says there (its descriptors 1 and 2, warnings, log records:
`bench.output.capture`) from its first instruction on; it talks to the parent through a pipe only.

Workers are forked from a server process that has imported torch, numpy and the stages' modules once
(multiprocessing's `forkserver`, Python 3.14's default on Linux; `spawn` where the platform has none).
A spawned worker imports them itself: measured here, 4-5 s before its first call (7 s on a busy
machine), for every cell's artifact, timing, Grad-CAM and profile worker and every `tune` variant; a
forked one answers in under 0.1 s, and a cached 3-backend run of a small model took 26-29 s instead of
39-48 s. The server is a fresh interpreter that has only imported (no op run, no CUDA), so a fork of it
is as clean as a spawn; the worker takes the parent's environment as it is when the worker starts
(`_serve`), as a spawned one did, not as it was when the server started.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import one_line
from bench.output.capture import OutputCapture, traceback_entry

# What the forkserver imports once for every worker it forks: the imports every worker makes and that
# take seconds (here torch 2.5-4.6 s, then the cell stages' modules 1.7 s: ONNX, ONNX Runtime, scipy).
# A fork keeps only the forking thread, so nothing whose threads start at import and are not restarted
# after a fork (OpenVINO's TBB pool, imported by its backends when a cell needs them); the OpenBLAS of
# numpy and of scipy stop their pool thread before a fork and start it again when next used.
PRELOADED = ("numpy", "torch", "bench.run.stages")


class WorkerFailed(RuntimeError):
    """A call did not return: the worker raised (message `Type: first line`), died, or ran out of time."""


class WorkerTimeout(WorkerFailed):
    """The call outlived its time; the worker was killed."""


class Budget:
    """One time budget for all of a cell's stages (`--timeout`), charged only while the cell's own worker
    works.

    In interleaved timing a cell waits while the other backends of its group time their rounds: that
    wait is not its own, so a slow neighbour never times a fast backend out, and `spent` is the cell's
    own duration (`duration_s`) rather than its group's."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.spent = 0.0

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.spent)

    def call(self, worker: Worker, function: Callable[..., Any], *args: Any) -> Any:
        """`worker.call_with_context(function, *args)` within what is left; the time it took is charged."""
        started = time.monotonic()
        try:
            return worker.call_with_context(self.remaining(), function, *args)
        finally:
            self.spent += time.monotonic() - started


@dataclass(frozen=True)
class WorkerContext:
    """Handed to functions called with `Worker.call_with_context`: state kept between calls, and a
    callable that tells the parent which stage the work is in (progress lines)."""

    state: dict[str, Any]
    stage: Callable[[str], None]


def _serve(conn: Any, log_file: str | None = None, environ: dict[str, str] | None = None) -> None:
    """The worker's loop: one request at a time, ("stage", name) messages while it runs, then
    ("ok", value) or ("error", message). With a log file, this process's descriptors 1 and 2, its
    warnings and log records go there before the work imports anything (a C++ warning or a library's
    progress bar never reaches the terminal; what `PRELOADED` said when the server imported it went to
    the parent's descriptors of that moment, the command's own log while `segbench` captures them), and
    so does a failure's traceback (the terminal gets the one-line message), also of failures the work
    catches and goes on from (a Grad-CAM method that raised while the others stand, logged to the
    `segbench` logger); without one (`call_in_worker`; every worker of a run has one), stderr: a forked
    worker's is the one the server was started with, the parent's when its first worker started.
    `environ` is the parent's environment when it started this worker: a forked worker would otherwise
    have the server's (a cache folder or a library setting changed since would be missed)."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if log_file is not None:
        OutputCapture(Path(log_file)).start()  # for the process's whole life
    _log_caught_failures(log_file)
    context = WorkerContext(state={}, stage=lambda name: conn.send(("stage", name)))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            break
        if request is None:
            break
        function, args, with_context = request
        try:
            reply: tuple[str, Any] = ("ok", function(context, *args) if with_context else function(*args))
        except Exception as exc:  # noqa: BLE001 - any failure becomes this call's error message
            _log_traceback(log_file)
            reply = ("error", one_line(exc))
        conn.send(reply)
    conn.close()
    _leave()


def _leave() -> None:
    """End the worker once the parent has asked it to finish, without the interpreter's teardown.

    Every result has gone through the pipe by then, and the teardown only frees memory: measured here, it
    took about 1 s per worker with torch and ONNX Runtime imported (a worker that imported them and ran one
    op closed in 1.1-1.3 s, 0.02-0.04 s without it), paid by every cell at least once (its artifact, its
    Grad-CAM, each `tune` variant); the measuring workers have always been killed (`MeasuringCell.close`).
    The exit handlers still run (`atexit`: logging's flush, multiprocessing's finalizers, which release
    the semaphores a library's progress bar made; skipped, Python's resource tracker warned of them in the
    cell's log), then what is left in the Python streams is written."""
    atexit._run_exitfuncs()  # CPython's own entry point for what a normal exit runs first
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or detached: nothing left to write
            pass
    os._exit(0)


class _CellLog(logging.Handler):
    """Appends records to the cell's log file, its folder made on the first one (a cell that fails
    nothing leaves no log)."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.ERROR)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        """Framed as segbench's own traceback entry, so the count of library lines leaves it out."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as log:
            log.write(traceback_entry(self.format(record)))


def _log_caught_failures(log_file: str | None) -> None:
    """Errors logged to the `segbench` logger (with their traceback) go to the cell's log file."""
    if log_file is not None:
        logger = logging.getLogger("segbench")
        logger.addHandler(_CellLog(Path(log_file)))
        logger.propagate = False  # not a library's record: the capture must not log and count it again


def _log_traceback(log_file: str | None) -> None:
    if log_file is None:
        traceback.print_exc()
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(traceback_entry(traceback.format_exc()))


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def worker_context() -> Any:
    """The forkserver with `PRELOADED` imported in it, where the platform has one; else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED))  # read once, when the server starts
    return context


class Worker:
    """A process of its own (`worker_context`) that runs the functions sent to it, one call at a time."""

    def __init__(self, on_stage: Callable[[str], None] = lambda name: None, log_file: Path | None = None) -> None:
        ctx = worker_context()
        self._conn, child = ctx.Pipe(duplex=True)
        self.log_file = log_file
        args = (child, str(log_file) if log_file else None, dict(os.environ))
        self._process = ctx.Process(target=_serve, args=args, daemon=True)
        self._process.start()
        child.close()
        self._on_stage = on_stage

    @property
    def pid(self) -> int:
        return int(self._process.pid or 0)

    @property
    def alive(self) -> bool:
        """Is the process still there (a call that raised leaves it serving; a crash or a timeout does not)?"""
        return self._process.is_alive()

    def call(self, timeout_s: float, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in the worker; raises `WorkerFailed`."""
        return self._request(timeout_s, function, args, with_context=False)

    def call_with_context(self, timeout_s: float, function: Callable[..., Any], *args: Any) -> Any:
        """`function(context, *args)` in the worker, with its `WorkerContext`; raises `WorkerFailed`."""
        return self._request(timeout_s, function, args, with_context=True)

    def _request(
        self, timeout_s: float, function: Callable[..., Any], args: tuple[Any, ...], with_context: bool
    ) -> Any:
        if not self._process.is_alive():
            raise WorkerFailed(f"worker died ({describe_exit(self._process.exitcode)})")
        deadline = time.monotonic() + timeout_s
        try:
            self._conn.send((function, args, with_context))
            while (left := deadline - time.monotonic()) > 0:
                if not self._conn.poll(min(1.0, left)):
                    continue
                message = self._conn.recv()
                if message[0] == "stage":
                    self._on_stage(message[1])
                    continue
                if message[0] == "error":
                    raise WorkerFailed(message[1])
                return message[1]
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._process.join(timeout=30)
            raise WorkerFailed(f"worker died ({describe_exit(self._process.exitcode)})") from None
        self.close(kill=True)
        raise WorkerTimeout(f"timeout after {timeout_s:g} s")

    def close(self, kill: bool = False) -> None:
        """Ask the worker to finish (or kill it) and wait for it."""
        if self._process.is_alive() and not kill:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call_in_worker(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    timeout_s: float,
    on_stage: Callable[[str], None] = lambda name: None,
) -> tuple[str, Any]:
    """One call in a fresh worker: ("ok", value) or ("error", message)."""
    with Worker(on_stage) as worker:
        try:
            return "ok", worker.call(timeout_s, function, *args)
        except WorkerFailed as exc:
            return "error", str(exc)
