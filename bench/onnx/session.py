"""ONNX Runtime sessions shared by the ONNX Runtime backends and the Grad-CAM graph cut.

Threads are fixed through the session options (intra-op = --threads, inter-op = 1, sequential), and
the execution provider follows the device, so every ORT session segbench makes runs the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import Session
from bench.onnx.export import INPUT_NAME


def ort_unavailable_reason(device: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime is not importable ({exc})"
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return None


def session_options(threads: int, optimized_path: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return options


def providers_for(device: str) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


class OrtSession(Session):
    def __init__(self, path: Path, device: str, threads: int) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers_for(device))

    def to_input(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]

    def to_numpy(self, outputs: np.ndarray) -> np.ndarray:
        return outputs
