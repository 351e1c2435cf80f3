"""ONNX Runtime sessions shared by the ONNX Runtime backends, and what ORT actually runs.

Threads are fixed through the session options (intra-op = --threads, inter-op = 1, sequential), and
the execution provider follows the device. Operator coverage is read from the graph *after* ORT's own
optimizations, because that is where QDQ pairs fuse into int8 kernels (QLinearConv) — or don't.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import OpCoverage, Session
from bench.onnx_export import INPUT_NAME

INT8_OP_PREFIXES = ("QLinear", "QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantize", "QAttention", "QOrdered")
BOUNDARY_OPS = ("QuantizeLinear", "DequantizeLinear")
# Ops that keep an 8-bit tensor 8-bit (data movement and max): int8 when their input is int8.
PASS_THROUGH_OPS = ("MaxPool", "NhwcMaxPool", "Concat", "Reshape", "Transpose", "Resize", "Slice", "Squeeze", "Unsqueeze",
                    "Flatten", "Identity", "Pad", "Split", "Gather", "DepthToSpace", "SpaceToDepth")
# Shape bookkeeping and ORT's NCHWc layout reorders: not compute, not counted either way.
META_OPS = ("Shape", "Constant", "ConstantOfShape", "Cast", "Range", "Size", "ReorderInput", "ReorderOutput")


def ort_unavailable_reason(device: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime is not importable ({exc})"
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return None


def _session_options(threads: int, optimized_path: Path | None = None) -> Any:
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

        self.session = ort.InferenceSession(str(path), _session_options(threads), providers=providers_for(device))

    def to_input(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]

    def to_numpy(self, outputs: np.ndarray) -> np.ndarray:
        return outputs


def graph_coverage(model: Any) -> OpCoverage:
    """Classify each compute node of an ONNX graph as int8 or float by the tensors it consumes.

    8-bit tensors start at QuantizeLinear or int8 kernels and stay 8-bit through pass-through ops;
    Q/DQ themselves and shape bookkeeping are not counted.
    """
    eight_bit: set[str] = set()
    int8: dict[str, int] = {}
    floating: dict[str, int] = {}
    for node in model.graph.node:
        op = node.op_type
        if op in BOUNDARY_OPS or op in META_OPS:
            if op == "QuantizeLinear":
                eight_bit.update(node.output)
            continue
        if op.startswith(INT8_OP_PREFIXES) or (op in PASS_THROUGH_OPS and node.input and node.input[0] in eight_bit):
            eight_bit.update(node.output)
            int8[op] = int8.get(op, 0) + 1
        else:
            floating[op] = floating.get(op, 0) + 1
    return OpCoverage(int8=int8, float=floating)


def optimized_coverage(model_path: Path, threads: int = 1) -> OpCoverage:
    """Coverage of the graph ONNX Runtime's CPU provider builds after its optimizations (fusions)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="segbench-ort-opt-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        ort.InferenceSession(str(model_path), _session_options(threads, optimized), providers=["CPUExecutionProvider"])
        return graph_coverage(onnx.load(str(optimized)))


def coverage_meta(coverage: OpCoverage) -> dict[str, dict[str, int]]:
    return {"int8": coverage.int8, "float": coverage.float}


def coverage_from_meta(meta: dict[str, Any]) -> OpCoverage | None:
    found = meta.get("coverage")
    return OpCoverage(int8=dict(found["int8"]), float=dict(found["float"])) if found else None
