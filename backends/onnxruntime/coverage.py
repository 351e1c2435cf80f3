"""Which compute nodes of an ONNX graph run in int8: two rule sets, side by side, because the two
runtimes that consume segbench's Q/DQ graphs read them differently.

- `fused_coverage`, for ONNX Runtime, applies to the graph ORT builds *after* its own optimizations
  (`optimized_coverage` asks ORT for it): there a DequantizeLinear -> Conv -> QuantizeLinear group
  has become one int8 kernel (`QLinearConv`), or stayed a float Conv between Q/DQ when ORT's CPU
  kernels cannot fuse it (ConvTranspose, PRelu). So int8 is read from the fused op types, and
  pass-through ops (max-pool, concat, reshape ...) are int8 when their input is already 8-bit.
- `explicit_qdq_coverage`, for TensorRT, applies to the Q/DQ graph handed to TensorRT's parser,
  which fuses Q/DQ itself while building: a Conv/ConvTranspose/Gemm/MatMul is int8 when its data and
  weight inputs both come out of DequantizeLinear; any other compute node when its inputs come out
  of DequantizeLinear and its outputs go only into QuantizeLinear.

Neither counts QuantizeLinear/DequantizeLinear (they only enter or leave the int8 domain) or shape
bookkeeping and layout reorders.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from backends.onnx.graph import GraphIndex, load_model
from bench.backend import OpCoverage

BOUNDARY_OPS = ("QuantizeLinear", "DequantizeLinear")
# Shape bookkeeping and ORT's NCHWc layout reorders: not compute, not counted either way.
META_OPS = ("Shape", "Constant", "ConstantOfShape", "Cast", "Range", "Size", "ReorderInput", "ReorderOutput")
# Fused int8 kernels in ORT's optimized graph.
INT8_OP_PREFIXES = ("QLinear", "QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantize", "QAttention", "QOrdered")
# Ops that keep an 8-bit tensor 8-bit (data movement and max): int8 when their input is int8.
PASS_THROUGH_OPS = (
    "MaxPool",
    "NhwcMaxPool",
    "Concat",
    "Reshape",
    "Transpose",
    "Resize",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
    "Pad",
    "Split",
    "Gather",
    "DepthToSpace",
    "SpaceToDepth",
)
# Ops TensorRT runs as int8 GEMM/convolution kernels when both operands arrive dequantized.
LINEAR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def fused_coverage(model: Any) -> OpCoverage:
    """ONNX Runtime's rule, on an optimized graph: 8-bit tensors start at QuantizeLinear or a fused
    int8 kernel and stay 8-bit through pass-through ops."""
    eight_bit: set[str] = set()
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    for node in model.graph.node:
        op = node.op_type
        if op in BOUNDARY_OPS or op in META_OPS:
            if op == "QuantizeLinear":
                eight_bit.update(node.output)
            if op in BOUNDARY_OPS:
                boundaries[op] += 1
            continue
        if op.startswith(INT8_OP_PREFIXES) or (op in PASS_THROUGH_OPS and node.input and node.input[0] in eight_bit):
            eight_bit.update(node.output)
            int8[op] += 1
        else:
            floating[op] += 1
    return OpCoverage(int8=dict(int8), float=dict(floating), boundaries=dict(boundaries))


def explicit_qdq_coverage(model_or_path: Any) -> OpCoverage:
    """TensorRT's rule, on the unfused Q/DQ graph (see the module docstring)."""
    index = GraphIndex(load_model(model_or_path))
    dequantized = {n.output[0] for n in index.graph.node if n.op_type == "DequantizeLinear"}
    graph_outputs = {o.name for o in index.graph.output}
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    for node in index.graph.node:
        op = node.op_type
        if op in BOUNDARY_OPS:
            boundaries[op] += 1
            continue
        if op in META_OPS:
            continue
        if op in LINEAR_OPS:
            data = [name for name in node.input[:2] if name]
            quantized = bool(data) and all(name in dequantized for name in data)
        else:
            data = [name for name in node.input if name and not index.is_constant(name)]
            outputs_quantized = all(
                name not in graph_outputs
                and index.readers(name)
                and all(reader.op_type == "QuantizeLinear" for reader in index.readers(name))
                for name in node.output
                if name
            )
            quantized = bool(data) and all(name in dequantized for name in data) and outputs_quantized
        (int8 if quantized else floating)[op] += 1
    return OpCoverage(int8=dict(int8), float=dict(floating), boundaries=dict(boundaries))


def optimized_coverage(model_path: Path, threads: int = 1) -> OpCoverage:
    """`fused_coverage` of the graph ONNX Runtime's CPU provider builds after its optimizations."""
    import onnx
    import onnxruntime as ort

    from backends.onnxruntime.session import session_options

    with tempfile.TemporaryDirectory(prefix="segbench-ort-opt-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        ort.InferenceSession(str(model_path), session_options(threads, optimized), providers=["CPUExecutionProvider"])
        return fused_coverage(onnx.load(str(optimized)))
