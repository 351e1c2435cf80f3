"""The work of one cell, as functions that run inside worker processes (`bench.run.isolation`).

- `prepare`: load the float checkpoint, build (or find) the backend's artifact -> `PreparedArtifact`;
- in one fresh worker: `load` the artifact into a session, `warm_up`, then `time_round` as often as
  the parent asks (once when sequential; in turns with the other backends when interleaved),
  `evaluate` it against the truth and the fp32 reference (-> `QualityResult`), then read its memory
  (-> `Measurement`), and last, with `--profile`, a profiled pass (`profile` -> `Profile`). Keeping
  preparation in another process means the measured peak memory belongs to the loaded backend alone
  (no export or calibration heap, no torch in an ONNX Runtime process);
- with `--scenario offline|server`, after the evaluation (and before the profile), in the same worker:
  `scenario_settings` (the session's throughput settings, `bench.backend.Session.throughput_settings`),
  then `offline_turn` and `server_turn` as often as the parent asks (`bench.run.scenario` drives them,
  in turns with the group's other backends), and `end_scenario`;
- `explain`: Grad-CAM on the backend's own arithmetic -> `GradcamResult`, in a third worker, so neither
  its memory nor its time touches the measured numbers.
- `count_graph`: the float model's MACs and bytes per image from its ONNX graph -> `GraphCount`, in a
  worker of its own once per model (bench/run/roofline.py), after the group's timing.

Each function takes the worker's `WorkerContext` first: `context.stage(name)` reports progress, and
`context.state` keeps the loaded session between the measuring calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bench.gradcam.explain import GradcamResult
from bench.measure.measurement import Measurement
from bench.measure.quality import QualityResult
from bench.run.artifacts import PreparedArtifact
from bench.run.isolation import WorkerContext
from bench.run.matrix import CellSpec

if TYPE_CHECKING:
    from bench.backend import PrepareContext, Profile, ThroughputSetting
    from bench.measure.scenarios import OfflineRun, ServerRun
    from bench.onnx.macs import GraphCount


def prepare_context(spec: CellSpec, set_threads: bool = True) -> PrepareContext:
    """The float checkpoint, the calibration images and the options a backend prepares from (in a worker,
    which takes the run's threads; the run's own process, looking for a cached artifact, keeps its own)."""
    import torch

    from bench.backend import PrepareContext
    from bench.training.checkpoints import load_checkpoint

    if set_threads:
        torch.set_num_threads(spec.threads)
    suite = spec.load_suite()
    model, _ = load_checkpoint(spec.model, suite, spec.checkpoint)
    return PrepareContext(
        model_name=spec.model,
        model=model,
        calibration=spec.calibration_images(suite),
        input_shape=(suite.in_channels, *suite.input_size),
        num_classes=suite.num_classes,
        precision=spec.precision,
        device=spec.device,
        options=spec.options,
        onnx_path=spec.onnx,
    )


def prepare(context: WorkerContext, spec: CellSpec) -> PreparedArtifact:
    """Load the float checkpoint and build (or find) the backend's artifact."""
    from bench.backend import get_backend
    from bench.run.artifacts import ensure_artifact

    context.stage("calibrate")
    ctx = prepare_context(spec)
    return ensure_artifact(get_backend(spec.backend), ctx, spec.checkpoint, artifact_label(spec))


def artifact_label(spec: CellSpec) -> str:
    """The readable part of the artifact's cache folder name (the key follows it)."""
    return f"{spec.model}--{spec.suite}"


def _batch(images: np.ndarray, batch_size: int) -> np.ndarray:
    reps = -(-batch_size // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch_size])


def load(context: WorkerContext, spec: CellSpec, prepared: PreparedArtifact) -> None:
    """The artifact as a session, with the timed batch ready; memory is counted from here on."""
    from bench.backend import get_backend
    from bench.measure.memory import current_rss_mib, keep_freed_memory, reset_peak_rss

    allocator = keep_freed_memory()
    suite = spec.load_suite()
    batch = _batch(suite.normalize(suite.load(spec.split).images[: spec.batch_size]), spec.batch_size)
    backend = get_backend(spec.backend)
    backend.unavailable_reason(spec.device)  # imports the runtime: part of the baseline, not of the backend
    context.stage("load")
    memory_method = reset_peak_rss()
    baseline = current_rss_mib()
    session = backend.load(prepared.artifact, spec.device, spec.threads)
    inputs = session.to_input(batch)
    session.reset_device_memory()
    context.state.update(
        session=session,
        inputs=inputs,
        batch=batch,
        memory_method=memory_method,
        allocator=allocator,
        baseline_rss_mib=baseline,
    )


def warm_up(context: WorkerContext, spec: CellSpec) -> None:
    """Untimed calls after loading (allocators, caches, lazy kernels, a compile for this shape)."""
    from bench.measure.timing import warm_up as run_warm_up

    context.stage("warm up")
    session, inputs = context.state["session"], context.state["inputs"]
    run_warm_up(lambda: session.time_call(inputs), spec.timing)
    context.state["samples"] = []


def time_round(context: WorkerContext, spec: CellSpec) -> tuple[int, float, float]:
    """One round of timed calls (the whole timing when sequential): how many, their summed time in
    seconds (the round's warm-up calls and the round trip excluded) and their median in ms (the run's
    rounds.parquet). The samples stay in the worker."""
    from bench.measure.priority import timed_at
    from bench.measure.timing import time_round as run_round

    session, inputs = context.state["session"], context.state["inputs"]
    seconds, calls = spec.timing.round_budget()
    with timed_at(spec.timing.priority) as grant:  # only the timed calls: loading and evaluating stay ordinary
        samples = run_round(
            lambda: session.time_call(inputs), seconds, calls, spec.timing.round_warmup_calls, spec.timing.max_iters
        )
        if spec.device == "cuda":  # the same round, host batch to host logits (docs/backends.md: end to end)
            batch = context.state["batch"]
            end_to_end = run_round(lambda: session.time_end_to_end(batch), 0.0, max(1, len(samples) // 2), 1)
            context.state.setdefault("end_to_end", {})[len(context.state["samples"])] = end_to_end
    context.state["timing_priority"] = grant.describe()
    context.state["samples"].append(samples)
    return len(samples), float(samples.sum()) / 1e9, float(np.median(samples)) / 1e6


def evaluate(context: WorkerContext, spec: CellSpec) -> QualityResult:
    """The session's predictions on the cell's split (evaluation; tuning for `segbench tune`), scored
    against the truth and the fp32 reference of that split."""
    from bench.measure.quality import evaluate as score

    context.stage("evaluate" if spec.split == "evaluation" else f"evaluate ({spec.split} split)")
    suite = spec.load_suite()
    evaluation = suite.load(spec.split)
    return score(
        context.state["session"],
        suite.normalize(evaluation.images),
        evaluation.masks,
        np.load(spec.reference),
        suite.classes,
        suite.foreground_classes,
        suite.ignore_label,
        spec.batch_size,
        spec.threshold,
        keep=suite.gradcam_images,
    )


def measurement(context: WorkerContext, spec: CellSpec, rounds: list[int]) -> Measurement:
    """The samples of the counted `rounds` with the memory of loading and timing the session (peak since
    `load`, and what it added to the baseline); then the high-water mark is reset for the evaluation."""
    from bench.measure.memory import peak_rss_mib, reset_peak_rss

    session = context.state["session"]
    device_peak = session.device_memory_peak()
    peak = peak_rss_mib()
    baseline = context.state["baseline_rss_mib"]
    reset_peak_rss()
    return Measurement(
        samples_ns=np.concatenate([context.state["samples"][i] for i in rounds]),
        sample_rounds=np.concatenate([np.full(len(context.state["samples"][i]), i) for i in rounds]),
        batch_size=spec.batch_size,
        timer=session.timer,
        peak_rss_mib=peak,
        baseline_rss_mib=baseline,
        memory_method=context.state["memory_method"],
        allocator=context.state["allocator"],
        session_notes=session.notes(),
        peak_device_mib=device_peak[0] if device_peak else None,
        device_memory_method=device_peak[1] if device_peak else None,
        timing_priority=context.state.get("timing_priority"),
        end_to_end_ns=_counted_end_to_end(context.state.get("end_to_end"), rounds),
    )


def _counted_end_to_end(by_round: dict[int, np.ndarray] | None, rounds: list[int]) -> np.ndarray | None:
    """The end-to-end samples of the counted rounds (a GPU cell's); None where none were taken."""
    if not by_round:
        return None
    kept = [by_round[i] for i in rounds if i in by_round]
    return np.concatenate(kept) if kept else None


def evaluation_peak(context: WorkerContext) -> float:
    """The process's high-water mark during the evaluation: the loaded session plus the evaluation's
    images, reference logits and predictions (the peak was reset after the timing, not the session)."""
    from bench.measure.memory import peak_rss_mib

    return peak_rss_mib()


def scenario_settings(context: WorkerContext, spec: CellSpec) -> list[ThroughputSetting]:
    """The loaded session's throughput settings for the cell's scenario (offline: at every batch size it
    asks for; server: at the run's batch size), with the images their batches are made of."""
    from bench.measure.scenarios import OFFLINE

    config = spec.scenario
    context.stage(f"{config.name}: settings")
    sizes = tuple(config.batch_sizes) if config.name == OFFLINE else (spec.batch_size,)
    settings = list(context.state["session"].throughput_settings(sizes, spec.threads))
    suite = spec.load_suite()
    images = suite.normalize(suite.load(spec.split).images[: max(sizes)])
    context.state.update(scenario_settings=settings, scenario_images=images)
    return settings


def _callers(context: WorkerContext, index: int) -> list:
    setting = context.state["scenario_settings"][index]
    return context.state["session"].callers(setting, _batch(context.state["scenario_images"], setting.batch_size))


def offline_turn(context: WorkerContext, spec: CellSpec, index: int) -> OfflineRun:
    """One offline measurement of setting `index` (`bench.measure.scenarios.run_offline`), at the timed
    rounds' priority; the setting's callers (a compile, sessions of their own) are made first, untimed."""
    from bench.measure.priority import timed_at
    from bench.measure.scenarios import run_offline

    setting = context.state["scenario_settings"][index]
    context.stage(f"offline: {setting.describe()}")
    callers = _callers(context, index)
    with timed_at(spec.timing.priority):
        return run_offline(callers, setting.batch_size, spec.scenario.duration_s, spec.scenario.warmup_calls)


def server_turn(context: WorkerContext, spec: CellSpec, index: int, rate: float, queries: int, seed: int) -> ServerRun:
    """One server run of `queries` queries at `rate` a second, served by setting `index`'s callers (made
    once, kept for the search's next probes); it stops early once its p99 is over the bound for certain."""
    from bench.measure.priority import timed_at
    from bench.measure.scenarios import run_server

    config = spec.scenario
    kept = context.state.get("server_callers")
    if kept is None or kept[0] != index:
        kept = context.state["server_callers"] = (index, _callers(context, index))
    context.stage(f"server: {rate:.1f} queries/s")
    with timed_at(spec.timing.priority):
        return run_server(kept[1], rate, queries, seed, config.latency_bound_ms, config.warmup_calls)


def end_scenario(context: WorkerContext, spec: CellSpec) -> None:
    """The scenario's callers and images dropped before the profile."""
    import gc

    for key in ("scenario_settings", "scenario_images", "server_callers"):
        context.state.pop(key, None)
    gc.collect()


def profile(context: WorkerContext, spec: CellSpec) -> Profile | None:
    """A profiled pass of the loaded session (`--profile`), after its timing, evaluation and memory
    readings, so that neither the profiler's cost nor its memory touches them."""
    context.stage("profile")
    directory = spec.profile_dir
    if directory is None:
        raise ValueError("a profiled cell needs a folder for its profiler files")
    directory.mkdir(parents=True, exist_ok=True)
    return context.state["session"].profile(context.state["inputs"], spec.profile_calls, directory)


def explain(context: WorkerContext, spec: CellSpec, prepared: PreparedArtifact) -> GradcamResult:
    """Grad-CAM on the backend's own arithmetic, against the fp32 maps."""
    import torch

    from bench.backend import get_backend
    from bench.gradcam.explain import explain_artifact
    from bench.training.checkpoints import load_checkpoint

    context.stage("gradcam")
    torch.set_num_threads(spec.threads)
    suite = spec.load_suite()
    model, _ = load_checkpoint(spec.model, suite, spec.checkpoint)
    return explain_artifact(
        get_backend(spec.backend),
        prepared.artifact,
        model,
        spec.model,
        suite,
        spec.checkpoint,
        spec.gradcam_layers,
        spec.threads,
        spec.device,
        precision=spec.precision,
        methods=spec.gradcam_methods,
        split=spec.split,
        calibration=spec.calibration_images(suite),
    )


def cache_graph_count(context: WorkerContext, spec: CellSpec) -> None:
    """The model's MAC count into the cache (`bench.run.count_cache.count_record`), counted in the cell's
    measuring worker where it is missing: a worker of its own would cost a process start per model and run
    (what `RooflineStage` then reads; it counts in a worker only what is still missing, a failure too)."""
    from bench.run.count_cache import count_record, store_count

    record = count_record(spec)
    if not record.is_file():
        store_count(record, count_graph(context, spec))


def count_graph(context: WorkerContext, spec: CellSpec) -> GraphCount:
    """The float model's MACs and traffic per image (bench/onnx/macs.py): the user's ONNX file where the
    cell runs one (--onnx), else the checkpoint's model exported at batch 1 to a temporary file."""
    import tempfile
    from pathlib import Path

    import torch

    from bench.onnx.macs import EXPORT_SOURCE, count_file, export_for_count
    from bench.training.checkpoints import load_checkpoint

    context.stage("count MACs")
    if spec.onnx is not None:
        return count_file(spec.onnx, f"user ONNX {spec.onnx.name}")
    torch.set_num_threads(spec.threads)
    suite = spec.load_suite()
    model, _ = load_checkpoint(spec.model, suite, spec.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        path = export_for_count(model, (suite.in_channels, *suite.input_size), Path(folder) / "model.onnx")
        return count_file(path, EXPORT_SOURCE)
