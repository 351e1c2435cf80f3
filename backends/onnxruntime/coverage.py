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
bookkeeping and layout reorders: a Concat, Gather or Slice that computes a Resize's output size from a
`Shape` is shape arithmetic, not a float op of the model. A convolution with one input channel per group
is counted as `<op> (depthwise)` (`QLinearConv (depthwise)`, `Conv (depthwise)`), another grouped one as
`<op> (grouped)`, so that a depthwise layer left in float is told apart from a dense one.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from backends.onnx.graph import GraphIndex, load_model
from bench.backend import OpCoverage, grouped_conv_label

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
# Where shape arithmetic starts: ops whose output describes a tensor rather than computing on its values.
SHAPE_SOURCES = ("Shape", "Size", "Constant", "ConstantOfShape")
# Convolutions and where their weight is: the fused int8 kernels take (x, x_scale, x_zero_point, w, ...).
CONV_WEIGHT_INPUT = {"Conv": 1, "FusedConv": 1, "NhwcConv": 1, "ConvInteger": 1, "QLinearConv": 3, "NhwcQLinearConv": 3}


def shape_arithmetic(graph: Any) -> set[int]:
    """Positions of the nodes that compute only on shapes and constants: the `SHAPE_SOURCES` and every node
    all of whose inputs are their outputs or initializers (a Resize's size from Shape -> Concat -> Gather)."""
    known = {init.name for init in graph.initializer}
    found: set[int] = set()
    for position, node in enumerate(graph.node):
        inputs = [name for name in node.input if name]
        if node.op_type in SHAPE_SOURCES or (inputs and all(name in known for name in inputs)):
            if node.op_type not in BOUNDARY_OPS:  # a weight's DequantizeLinear is a boundary, counted as one
                found.add(position)
                known.update(node.output)
    return found


def weight_tensors(graph: Any) -> dict[str, Any]:
    """Tensor name -> the initializer holding its values: the initializers, and the outputs of the
    DequantizeLinear nodes that dequantize one (a Q/DQ graph's weights)."""
    found = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in found:
            found[node.output[0]] = found[node.input[0]]
    return found


def op_label(node: Any, weights: dict[str, Any]) -> str:
    """The node's op type, with ` (depthwise)` (one input channel per group, read from the weight's shape) or
    ` (grouped)` (any other group count above 1, or a weight whose shape is not in the file) for a convolution."""
    position = CONV_WEIGHT_INPUT.get(node.op_type)
    if position is None:
        return str(node.op_type)
    group = next((int(a.i) for a in node.attribute if a.name == "group"), 1)
    weight = weights.get(node.input[position]) if len(node.input) > position else None
    per_group = int(weight.dims[1]) if weight is not None and len(weight.dims) > 1 else None
    return grouped_conv_label(str(node.op_type), group, per_group)


def fused_coverage(model: Any) -> OpCoverage:
    """ONNX Runtime's rule, on an optimized graph: 8-bit tensors start at QuantizeLinear or a fused
    int8 kernel and stay 8-bit through pass-through ops."""
    eight_bit: set[str] = set()
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    shapes = shape_arithmetic(model.graph)
    weights = weight_tensors(model.graph)
    for position, node in enumerate(model.graph.node):
        op = node.op_type
        if position in shapes:
            continue
        if op in BOUNDARY_OPS or op in META_OPS:
            if op == "QuantizeLinear":
                eight_bit.update(node.output)
            if op in BOUNDARY_OPS:
                boundaries[op] += 1
            continue
        if op.startswith(INT8_OP_PREFIXES) or (op in PASS_THROUGH_OPS and node.input and node.input[0] in eight_bit):
            eight_bit.update(node.output)
            int8[op_label(node, weights)] += 1
        else:
            floating[op_label(node, weights)] += 1
    return OpCoverage(int8=dict(int8), float=dict(floating), boundaries=dict(boundaries))


def explicit_qdq_coverage(model_or_path: Any) -> OpCoverage:
    """TensorRT's rule, on the unfused Q/DQ graph (see the module docstring)."""
    index = GraphIndex(load_model(model_or_path))
    dequantized = {n.output[0] for n in index.graph.node if n.op_type == "DequantizeLinear"}
    graph_outputs = {o.name for o in index.graph.output}
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    shapes = shape_arithmetic(index.graph)
    weights = weight_tensors(index.graph)
    for position, node in enumerate(index.graph.node):
        op = node.op_type
        if op in BOUNDARY_OPS:
            boundaries[op] += 1
            continue
        if op in META_OPS or position in shapes:
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
        (int8 if quantized else floating)[op_label(node, weights)] += 1
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
