"""The benchmark matrix: reference models first, then one worker process per cell.

The parent trains (or finds) each reference checkpoint and computes the fp32 reference predictions
once; every cell then runs in a spawned worker with a timeout. A worker that crashes, is killed or
times out yields an error row, and the run goes on; each finished row is written at once.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.backend import get_backend, list_backends
from bench.cache import cache_root
from bench.environment import collect_environment
from bench.errors import UsageError, unknown_name
from bench.models import list_models
from bench.results import Row, RunStore, update_latest
from bench.suite import get_suite
from bench.timing import TimingConfig
from bench.worker import CellResult, CellSpec, base_row, measure_cell, prepare_cell, unavailable_reason, worker_main

DEFAULT_SUITE = "synthetic-nuclei"
DEFAULT_MODELS = ("unet",)
DEFAULT_BACKENDS: tuple[str, ...] = ()  # empty: every registered backend at its default precision


@dataclass(frozen=True)
class RunConfig:
    suites: tuple[str, ...] = (DEFAULT_SUITE,)
    models: tuple[str, ...] = DEFAULT_MODELS
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    timing: TimingConfig = field(default_factory=TimingConfig)
    results_root: Path = Path("results")
    cell_timeout_s: float = 1800.0
    progress: bool = True
    backend_options: dict[str, dict[str, str]] = field(default_factory=dict)  # backend -> {option: value}

    def backend_specs(self) -> tuple[str, ...]:
        """The fp32 reference backend first, so its row heads the table."""
        names = self.backends or tuple(list_backends())
        return tuple(sorted(names, key=lambda spec: parse_backend_spec(spec)[0] != "torch-eager"))

    def validate(self) -> None:
        """Check every name before any work starts, so a typo costs nothing."""
        for name in self.suites:
            get_suite(name)
        valid_models = list_models()
        for name in self.models:
            if name not in valid_models:
                raise unknown_name("model", name, valid_models)
        valid_backends = list_backends()
        for spec in self.backend_specs():
            name, precision = parse_backend_spec(spec)
            if name not in valid_backends:
                raise unknown_name("backend", name, valid_backends)
            backend = get_backend(name)
            if precision is not None and precision not in backend.precisions:
                raise UsageError(f"backend '{name}' has no precision '{precision}'; valid: {', '.join(backend.precisions)}")
        for name, options in self.backend_options.items():
            if name not in [parse_backend_spec(s)[0] for s in self.backend_specs()]:
                raise UsageError(f"--option names backend '{name}', which is not in --backends")
            get_backend(name).resolve_options(options)
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"--device '{self.device}' is not valid; expected cpu or cuda")
        if self.threads < 1 or self.batch_size < 1:
            raise UsageError("--threads and --batch-size must be at least 1")


def new_run_dir(results_root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = results_root / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = results_root / f"{stamp}-{suffix}"
    return run_dir


def reference_predictions(suite_name: str, model_name: str, checkpoint: Path) -> Path:
    """fp32 eager predictions on the evaluation split, cached beside the checkpoint."""
    path = cache_root() / "reference" / f"{checkpoint.stem}.npy"
    if path.exists():
        return path
    import torch

    from bench.cache import atomic_write_bytes
    from bench.training import load_checkpoint, predict

    suite = get_suite(suite_name)
    model, _ = load_checkpoint(model_name, suite, checkpoint)
    with torch.no_grad():
        preds = predict(model, suite.normalize(suite.load("evaluation").images)).astype(np.uint8)
    import io

    buffer = io.BytesIO()
    np.save(buffer, preds)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def call_in_worker(function: Callable[..., Any], args: tuple, timeout_s: float) -> tuple[str, Any]:
    """Run `function(*args)` in a spawned process: ("ok", value) or ("error", message).

    A worker that raises, crashes natively (abort, out-of-memory kill) or outlives `timeout_s`
    gives an error message instead of taking the run down.
    """
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=worker_main, args=(function, args, sender), daemon=True)
    process.start()
    sender.close()
    deadline = time.monotonic() + timeout_s
    answer: tuple[str, Any] | None = None
    try:
        while time.monotonic() < deadline:
            if receiver.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
                try:
                    answer = receiver.recv()
                except EOFError:
                    pass
                break
        else:
            process.kill()
            process.join()
            return "error", f"timeout after {timeout_s:g} s"
    finally:
        receiver.close()
    process.join(timeout=30)
    return answer or ("error", f"worker died ({_describe_exit(process.exitcode)})")


def run_cell(spec: CellSpec, timeout_s: float) -> CellResult:
    """Availability check, then prepare and measure, each in its own worker process."""
    started = time.monotonic()
    status, reason = call_in_worker(unavailable_reason, (spec,), timeout_s)
    if status == "error":
        return CellResult(base_row(spec, f"error: {reason}"))
    if reason is not None:
        return CellResult(base_row(spec, f"unavailable: {reason}"))
    status, prepared = call_in_worker(prepare_cell, (spec,), timeout_s)
    if status == "error":
        return CellResult(base_row(spec, f"error: preparing the artifact: {prepared}"))
    remaining = max(1.0, timeout_s - (time.monotonic() - started))
    status, result = call_in_worker(measure_cell, (spec, prepared), remaining)
    if status == "error":
        return CellResult(base_row(spec, f"error: {result}"))
    return result


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def parse_backend_spec(spec: str) -> tuple[str, str | None]:
    """`name` or `name:precision` (e.g. `torch-eager:bf16`)."""
    name, _, precision = spec.partition(":")
    return name, precision or None


def plan_cells(config: RunConfig, checkpoints: dict[tuple[str, str], tuple[Path, Path]]) -> list[CellSpec]:
    cells = []
    for suite in config.suites:
        for model in config.models:
            checkpoint, reference = checkpoints[(suite, model)]
            for spec in config.backend_specs():
                name, precision = parse_backend_spec(spec)
                backend = get_backend(name)
                options = backend.resolve_options(config.backend_options.get(name, {}))
                cells.append(CellSpec(suite=suite, model=model, backend=name, precision=precision or backend.default_precision,
                                      device=config.device, threads=config.threads, batch_size=config.batch_size,
                                      timing=config.timing, checkpoint=checkpoint, reference=reference,
                                      options=tuple(sorted(options.items()))))
    return cells


def run_benchmark(config: RunConfig, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Path:
    """Run the whole matrix; returns the run folder."""
    from bench.report import write_markdown
    from bench.training import ensure_checkpoint

    config.validate()
    run_dir = new_run_dir(config.results_root)
    store = RunStore(run_dir)
    store.write_env(collect_environment(config.threads))
    update_latest(config.results_root, run_dir)
    checkpoints = {}
    for suite_name in config.suites:
        suite = get_suite(suite_name)
        for model in config.models:
            checkpoint = ensure_checkpoint(model, suite, progress=config.progress)
            checkpoints[(suite_name, model)] = (checkpoint, reference_predictions(suite_name, model, checkpoint))
    cells = plan_cells(config, checkpoints)
    for i, spec in enumerate(cells, 1):
        label = f"[{i}/{len(cells)}] {spec.suite} / {spec.model} / {spec.backend} {spec.precision} {spec.device}"
        log(f"{label} ...")
        result = run_cell(spec, config.cell_timeout_s)
        store.append(result.row, result.samples_ns)
        log(f"{label}: {_outcome(result.row)}")
    write_markdown(run_dir, store.table())
    return run_dir


def _outcome(row: Row) -> str:
    if not row.ok:
        return row.status
    return f"ok, p50 {row.latency_p50_ms:.2f} ms, dice {row.dice:.4f}, {row.duration_s:.1f} s"
