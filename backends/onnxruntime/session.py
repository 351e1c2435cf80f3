"""ONNX Runtime sessions shared by the ONNX Runtime backends and the Grad-CAM graph cut.

Threads are fixed through the session options (intra-op = --threads, inter-op = 1, sequential), and
the execution provider follows the device, so every ORT session segbench makes runs the same way.

Spinning. By default ORT's intra-op worker threads keep spinning after a run, waiting for the next.
Under a hypervisor that is costly twice over. Measured here (2 vCPUs, Firecracker, unet 128x128 QDQ
int8, 2 threads, 20 s each): with the default, the p50 of one-second windows switched between 6.0 ms
and 3.8 ms in phases of seconds (the spinning vCPU is descheduled by the host's pause-loop exiting, so
the second thread often joins late); with `session.force_spinning_stop=1` (spin within a run, stop at
its end) it held 3.7 ms throughout, and with `session.intra_op.allow_spinning=0` 3.9 ms. And a
spinning session steals the cores from whatever runs next: about 40 ms of CPU after each run here.
So `spinning=run` is the default; `always` is ORT's own default and `off` never spins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.backend import Profile, Session, ThroughputSetting
from bench.onnx.names import INPUT_NAME


def ort_unavailable_reason(device: str) -> str | None:
    """Why ONNX Runtime cannot run on `device` here, or None. It comes from one of two extras, `cpu`
    (`onnxruntime`) or `gpu` (`onnxruntime-gpu`), never both (docs/install.md)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "onnxruntime":
            return "onnxruntime is not installed (pip install 'segbench[cpu]', or 'segbench[gpu]' for CUDA)"
        return f"onnxruntime is not importable ({exc})"
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider (the CPU build; 'segbench[gpu]' in its place: docs/install.md)"
    return None


Spinning = Literal["run", "always", "off"]
SPINNING_ENTRIES: dict[str, dict[str, str]] = {
    "run": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    "always": {},  # ONNX Runtime's default
    "off": {"session.intra_op.allow_spinning": "0"},
}


# ONNX Runtime's graph transformer that gives a float Conv/Gemm/MatMul int8 weights when its input comes
# out of DequantizeLinear and its output goes into QuantizeLinear. It would undo `nodes_to_exclude` for a
# layer between two quantized neighbours (measured, onnxruntime 1.32: an excluded Conv ran as QLinearConv),
# and segbench's graphs hold such a node only when a layer is kept in float on purpose, so every session
# (timed, coverage, Grad-CAM cuts) leaves it out.
DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)


def session_options(threads: int, optimized_path: Path | None = None, spinning: str = "run") -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("optimization.disable_specified_optimizers", ",".join(DISABLED_OPTIMIZERS))
    for key, value in SPINNING_ENTRIES[spinning].items():
        options.add_session_config_entry(key, value)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return options


def _threads(count: int) -> str:
    return f"{count} thread" + ("s" if count != 1 else "")


def providers_for(device: str) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


class OrtSession(Session):
    def __init__(self, path: Path, device: str, threads: int, spinning: str = "run") -> None:
        import onnxruntime as ort

        self.path, self.threads, self.spinning = path, threads, spinning
        self.providers = providers_for(device)
        self.session = ort.InferenceSession(str(path), self._options(), providers=self.providers)

    def _options(self, optimized_path: Path | None = None) -> Any:
        """This session's options; the profiled twin adds the profiler and saves its optimized graph."""
        return session_options(self.threads, optimized_path, spinning=self.spinning)

    def to_input(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]

    def to_numpy(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def throughput_settings(self, batch_sizes: Sequence[int], threads: int) -> list[ThroughputSetting]:
        """Per batch size: this session alone (one caller, its `threads` intra-op threads), and `k` sessions
        of the same file with `threads / k` intra-op threads each, run at once from `k` threads (every `k`
        > 1 that divides `threads`): onnxruntime_perf_test's concurrent runs, each with a pool of its own
        rather than all queueing on one, the run's threads in all."""
        splits = [k for k in range(2, threads + 1) if threads % k == 0]
        settings = []
        for size in batch_sizes:
            settings.append(ThroughputSetting(size, 1, f"1 session x {_threads(threads)}"))
            settings += [ThroughputSetting(size, k, f"{k} sessions x {_threads(threads // k)}") for k in splits]
        return settings

    def callers(self, setting: ThroughputSetting, batch: np.ndarray) -> list[Callable[[], object]]:
        """One caller: this session. Several: as many sessions of the same file, with the same options and
        `threads / k` intra-op threads each (one InferenceSession may run from several threads at once,
        but then they share its one intra-op pool)."""
        import onnxruntime as ort

        inputs = self.to_input(batch)
        if setting.callers == 1:
            return [lambda: self.session.run(None, inputs)]
        each = max(1, self.threads // setting.callers)
        sessions = [
            ort.InferenceSession(
                str(self.path), session_options(each, spinning=self.spinning), providers=self.providers
            )
            for _ in range(setting.callers)
        ]
        return [functools.partial(session.run, None, inputs) for session in sessions]

    def profile(self, inputs: dict[str, np.ndarray], calls: int, work_dir: Path) -> Profile:
        """ONNX Runtime's profiler is a session option: a second session from the same file with these
        options and the profiler on (backends/onnxruntime/profile.py)."""
        from backends.onnxruntime.profile import ort_profile

        return ort_profile(self.path, self._options, self.providers, inputs, calls, work_dir)
