"""The benchmark matrix: reference models first, then one worker process per cell.

The parent trains (or finds) each reference checkpoint and computes the fp32 reference predictions
once; every cell then runs in a spawned worker with a timeout. A worker that crashes, is killed or
times out yields an error row, and the run goes on; each finished row is written at once.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.backend import get_backend, list_backends
from bench.cache import atomic_write_bytes, cache_root
from bench.environment import collect_environment
from bench.errors import UsageError, unknown_name
from bench.models import list_models
from bench.results import Row, RunStore, update_latest
from bench.suite import Suite, get_suite
from bench.timing import TimingConfig
from bench.gradcam_cell import GradcamCellResult, gradcam_cell
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
    data_dir: Path | None = None  # the suite's data folder (--data-dir); default: the suite's own search
    weights: Path | None = None  # a user's state dict for the one (external) model (--weights)
    onnx: Path | None = None  # a user's fp32 ONNX file for the ONNX-based backends (--onnx)
    gradcam: bool = True
    gradcam_layers: tuple[str, ...] = ()  # module paths; empty: each model's default layer
    threshold: float = 0.5  # foreground threshold of a single-channel (sigmoid) binary model

    def backend_specs(self) -> tuple[str, ...]:
        """The fp32 reference backend first, so its row heads the table."""
        names = self.backends or tuple(list_backends())
        return tuple(sorted(names, key=lambda spec: parse_backend_spec(spec)[0] != "torch-eager"))

    def _validate_gradcam_layers(self, suites: list[Suite]) -> None:
        """Every --gradcam-layer must name a layer of every model (an alias or a module path)."""
        from bench.gradcam import layer_path, resolve_layer
        from bench.models import create_model, external

        suite = suites[0]
        for name in self.models:
            build = external.build_external if external.is_external(name) else create_model
            model = build(name, suite.in_channels, suite.num_classes)
            for layer in self.gradcam_layers:
                try:
                    resolve_layer(model, layer_path(model, layer))
                except UsageError as exc:
                    aliases = ", ".join(getattr(model, "gradcam_layers", {}) or {}) or "none"
                    raise UsageError(f"--gradcam-layer '{layer}' is not a layer of model '{name}' "
                                     f"(aliases: {aliases}; or a module path)") from exc

    def validate(self) -> None:
        """Check every name and file before any work starts, so a typo costs nothing."""
        from bench.models import external

        suites = [get_suite(name, data_dir=self.data_dir) for name in self.suites]
        valid_models = list_models()
        for name in self.models:
            if external.is_external(name):
                for suite in suites:
                    model = external.build_external(name, suite.in_channels, suite.num_classes)
                    external.check_output_shape(model, name, suite.in_channels, suite.input_size, suite.num_classes)
            elif name not in valid_models:
                raise unknown_name("model", name, valid_models)
        if self.gradcam and self.gradcam_layers:
            self._validate_gradcam_layers(suites)
        for option, path in (("--weights", self.weights), ("--onnx", self.onnx)):
            if path is not None and len(self.models) != 1:
                raise UsageError(f"{option} needs exactly one model in --models (got {len(self.models)})")
        if self.weights is not None and not self.weights.is_file():
            raise UsageError(f"--weights '{self.weights}' does not exist")
        if self.onnx is not None:
            from bench.onnx_import import check_onnx_fits

            for suite in suites:
                check_onnx_fits(self.onnx, suite.in_channels, suite.input_size, suite.num_classes)
        if not 0.0 < self.threshold < 1.0:
            raise UsageError(f"--threshold {self.threshold} is not valid; expected a probability between 0 and 1")
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


RUN_FILE = "run.json"


def save_run_config(config: RunConfig, run_dir: Path) -> None:
    """The matrix and settings of a run, so `--resume` can finish it exactly as it was started."""
    data = {**asdict(config), "results_root": str(config.results_root), "backends": list(config.backend_specs()),
            **{k: str(getattr(config, k)) if getattr(config, k) is not None else None for k in ("data_dir", "weights", "onnx")}}
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(data, indent=2).encode())


def load_run_config(run_dir: Path) -> RunConfig:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise UsageError(f"--resume {run_dir}: no {RUN_FILE} there; expected a segbench run folder")
    data = json.loads(path.read_text())
    return RunConfig(
        suites=tuple(data["suites"]), models=tuple(data["models"]), backends=tuple(data["backends"]),
        device=data["device"], threads=data["threads"], batch_size=data["batch_size"],
        timing=TimingConfig(**data["timing"]), results_root=run_dir.parent, cell_timeout_s=data["cell_timeout_s"],
        progress=data.get("progress", True), backend_options=data.get("backend_options", {}),
        **{k: Path(data[k]) if data.get(k) else None for k in ("data_dir", "weights", "onnx")},
        gradcam=data.get("gradcam", True), gradcam_layers=tuple(data.get("gradcam_layers", ())),
        threshold=data.get("threshold", 0.5),
    )


def new_run_dir(results_root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = results_root / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = results_root / f"{stamp}-{suffix}"
    return run_dir


def reference_outputs(suite_name: str, model_name: str, checkpoint: Path, data_dir: Path | None = None) -> Path:
    """fp32 eager logits (N, C, H, W) on the evaluation split, cached beside the checkpoint: the
    reference every backend's predictions and output SQNR are measured against."""
    import io

    from bench.cache import stable_hash
    from bench.training import load_checkpoint, predict_logits

    suite = get_suite(suite_name, data_dir=data_dir)
    path = cache_root() / "reference" / f"{checkpoint.stem}--{stable_hash(suite.config())}.logits.npy"
    if path.exists():
        return path
    model, _ = load_checkpoint(model_name, suite, checkpoint)
    logits = predict_logits(model, suite.normalize(suite.load("evaluation").images)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, logits)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def call_in_worker(function: Callable[..., Any], args: tuple, timeout_s: float,
                   on_stage: Callable[[str], None] = lambda name: None) -> tuple[str, Any]:
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
                    message = receiver.recv()
                except EOFError:
                    break
                if message[0] == "stage":
                    on_stage(message[1])
                    continue
                answer = message
                break
        else:
            process.kill()
            process.join()
            return "error", f"timeout after {timeout_s:g} s"
    finally:
        receiver.close()
    process.join(timeout=30)
    return answer or ("error", f"worker died ({_describe_exit(process.exitcode)})")


def run_cell(spec: CellSpec, timeout_s: float, on_stage: Callable[[str], None] = lambda name: None) -> CellResult:
    """Availability check, then prepare and measure, each in its own worker process."""
    started = time.monotonic()
    on_stage("check")
    status, reason = call_in_worker(unavailable_reason, (spec,), timeout_s)
    if status == "error":
        return CellResult(base_row(spec, f"error: {reason}"))
    if reason is not None:
        return CellResult(base_row(spec, f"unavailable: {reason}"))
    status, prepared = call_in_worker(prepare_cell, (spec,), timeout_s, on_stage)
    if status == "error":
        return CellResult(base_row(spec, f"error: preparing the artifact: {prepared}"))
    remaining = max(1.0, timeout_s - (time.monotonic() - started))
    status, result = call_in_worker(measure_cell, (spec, prepared), remaining, on_stage)
    if status == "error":
        return CellResult(base_row(spec, f"error: {result}"))
    if not (spec.gradcam and result.row.ok):
        return result
    remaining = max(1.0, timeout_s - (time.monotonic() - started))
    status, explained = call_in_worker(gradcam_cell, (spec, prepared), remaining, on_stage)
    if status == "error":  # the measured numbers stand; the row says why its Grad-CAM columns are empty
        return replace(result, row=replace(result.row, gradcam_note=f"Grad-CAM error: {explained}"))
    return with_gradcam(result, explained)


ROW_GRADCAM_COLUMNS = ("gradcam_pearson", "gradcam_spearman", "gradcam_top10_iou", "gradcam_jsd", "gradcam_method",
                       "gradcam_zero_maps", "gradcam_layer", "gradcam_images", "gradcam_s_per_image", "gradcam_note")


def with_gradcam(result: CellResult, explained: GradcamCellResult) -> CellResult:
    """The cell's row with its Grad-CAM columns filled (further layers as extra columns)."""
    known = {k: v for k, v in explained.columns.items() if k in ROW_GRADCAM_COLUMNS}
    extra = {k: v for k, v in explained.columns.items() if k not in ROW_GRADCAM_COLUMNS}
    row = replace(result.row, **known, extra={**result.row.extra, **extra})
    return replace(result, row=row, gradcam=explained)


def write_montage(run_dir: Path, result: CellResult, suite: Suite) -> Path | None:
    """figures/gradcam_<suite>_<model>_<backend>-<precision>.png for a cell that was explained."""
    from bench.figures import figure_name, gradcam_montage, save_figure

    explained, row = result.gradcam, result.row
    if explained is None or explained.backend_maps is None or result.predictions_head is None:
        return None
    labels = result.predictions_head[: len(explained.images)]
    title = (f"{row.suite} / {row.model} / {row.backend} {row.precision}: Grad-CAM at {explained.layer} "
             f"({row.gradcam_method}); Pearson {row.gradcam_pearson:.3f}, top-10% IoU {row.gradcam_top10_iou:.3f}")
    fig = gradcam_montage(explained.images, labels, explained.reference_maps, explained.backend_maps,
                          [suite.classes[c] for c in explained.classes], suite.colors, title, row.backend)
    name = figure_name("gradcam", row.suite, row.model, f"{row.backend}-{row.precision}", row.device, f"b{row.batch_size}")
    return save_figure(fig, run_dir / "figures" / f"{name}.png")


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


def plan_cells(config: RunConfig, checkpoints: dict[tuple[str, str], tuple[Path, Path]],
               onnx_files: dict[str, Path] | None = None) -> list[CellSpec]:
    onnx_files = onnx_files or {}
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
                                      options=tuple(sorted(options.items())), data_dir=config.data_dir,
                                      onnx=onnx_files.get(suite), gradcam=config.gradcam,
                                      gradcam_layers=config.gradcam_layers, threshold=config.threshold))
    return cells


def run_benchmark(config: RunConfig, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                  resume: Path | None = None) -> Path:
    """Run the whole matrix (or what `resume`'s folder has not finished); returns the run folder."""
    from bench.recipes import recipe_for
    from bench.report import write_reports
    from bench.training import ensure_checkpoint, imported_checkpoint

    config.validate()
    run_dir = resume if resume is not None else new_run_dir(config.results_root)
    store = RunStore(run_dir)
    if resume is None:
        store.write_env(collect_environment(config.threads))
        save_run_config(config, run_dir)
        update_latest(config.results_root, run_dir)
    finished = store.finished_cells()
    checkpoints, onnx_files, suites = {}, {}, {}
    for suite_name in config.suites:
        suite = suites[suite_name] = get_suite(suite_name, data_dir=config.data_dir)
        if config.onnx is not None:
            from bench.onnx_import import import_onnx

            onnx_files[suite_name] = import_onnx(config.onnx, suite.in_channels, suite.input_size, suite.num_classes)
        for model in config.models:
            if config.weights is not None:
                checkpoint = imported_checkpoint(model, suite, config.weights, progress=config.progress)
            else:
                checkpoint = ensure_checkpoint(model, suite, recipe_for(model, suite.name), progress=config.progress)
            checkpoints[(suite_name, model)] = (checkpoint, reference_outputs(suite_name, model, checkpoint, config.data_dir))
    cells = plan_cells(config, checkpoints, onnx_files)
    for i, spec in enumerate(cells, 1):
        label = f"[{i}/{len(cells)}] {spec.suite} / {spec.model} / {spec.backend} {spec.precision} {spec.device}"
        if cell_key(spec) in finished:
            log(f"{label}: finished earlier, kept")
            continue
        result = run_cell(spec, config.cell_timeout_s, on_stage=lambda name, label=label: log(f"{label}: {name}"))
        store.append(result.row, result.samples_ns, result.per_image_dice,
                     result.gradcam.records if result.gradcam is not None else None)
        try:
            write_montage(run_dir, result, suites[spec.suite])
        except Exception as exc:  # a figure must never cost the finished numbers
            log(f"{label}: Grad-CAM montage not drawn: {type(exc).__name__}: {exc}")
        log(f"{label}: {_outcome(result.row)}")
    write_reports(run_dir, store.table())
    return run_dir


def cell_key(spec: CellSpec) -> str:
    return "/".join(str(v) for v in (spec.suite, spec.model, spec.backend, spec.precision, spec.device, spec.batch_size))


def _outcome(row: Row) -> str:
    if not row.ok:
        return row.status
    return f"ok, p50 {row.latency_p50_ms:.2f} ms, dice {row.dice:.4f}, {row.duration_s:.1f} s"
