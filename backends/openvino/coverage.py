"""Which layers the compiled OpenVINO model really runs in int8, read from its runtime graph.

`CompiledModel.get_runtime_model()` is the graph the CPU plugin executes after its own fusions (an
NNCF FakeQuantize folded into the convolution before it, say); each node's `layerType` and
`runtimePrecision` say what it is and in which precision it runs. A compute node running in i8/u8 is
int8; in f32/bf16/f16, float; a FakeQuantize left standing only enters or leaves the int8 domain
(a boundary). Inputs, outputs, constants, reshapes and layout reorders are not compute and are not
counted, as in the ONNX rules (backends/onnxruntime/coverage.py).

Two node kinds say too little by their layer type alone:
- `Subgraph` is a snippets kernel the plugin generated for a fused group of operations (the attention's
  MatMul -> Softmax -> MatMul, a residual Add, the input's quantization). It is named by the operation
  types it absorbed (`originalLayersNames`, typed from the IR the model was compiled from, or from a
  plugin-made name's `Type_N` form), e.g. `Subgraph(MatMul,Multiply,Softmax)`; one that absorbed only
  FakeQuantize nodes (the input's quantizer) or only the dequantization the plugin's low-precision
  transformations split off a FakeQuantize (`.../DequantizationMultiply`) is a boundary.
- A `Convolution` whose weight is grouped (5-D) with one input channel per group is
  `Convolution (depthwise)`; another grouped one `Convolution (grouped)`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.backend import OpCoverage, grouped_conv_label

NOT_COMPUTE = ("Input", "Output", "Const", "Reshape", "Reorder", "Squeeze", "Unsqueeze", "ShapeOf", "Convert")
BOUNDARY = ("FakeQuantize",)
INT8_PRECISIONS = ("i8", "u8")
FLOAT_PRECISIONS = ("f32", "bf16", "f16")
CONVOLUTIONS = ("Convolution", "GroupConvolution")
DEQUANTIZATION = "Dequantization"  # the Subtract/Multiply a FakeQuantize's int8 output is dequantized by
_DEQUANTIZATION_SUFFIXES = ("/DequantizationMultiply", "/DequantizationSubtract")
# Operation types left out of a Subgraph's name: quantizers, and the bookkeeping not counted anyway.
NOT_NAMED = (*BOUNDARY, DEQUANTIZATION, *NOT_COMPUTE, "Constant", "Parameter", "Result", "Transpose")
_PLUGIN_NAME = re.compile(r"^([A-Z][A-Za-z]*)_\d+$")  # an operation the plugin made: its type, an instance id


def operation_types(model: Any) -> dict[str, str]:
    """Friendly name -> operation type of every operation of an OpenVINO model (the IR compiled)."""
    return {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}


def runtime_layers(compiled: Any) -> list[tuple[str, str, Any]]:
    """(layerType, runtimePrecision, the node) of every node of the compiled model's runtime graph."""
    found = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        found.append((info["layerType"].astype(str), info["runtimePrecision"].astype(str).lower(), op))
    return found


def _absorbed(op: Any, types: Mapping[str, str]) -> list[str]:
    """The operation types a runtime node absorbed, from its `originalLayersNames`."""
    info = op.get_rt_info()
    names = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
    found = []
    for name in filter(None, names.split(",")):
        plugin_made = _PLUGIN_NAME.match(name)
        kind = types.get(name) or (plugin_made.group(1) if plugin_made else None)
        if kind is None and name.endswith(_DEQUANTIZATION_SUFFIXES):
            kind = DEQUANTIZATION
        if kind is not None:
            found.append(kind)
    return found


def _convolution_label(kind: str, op: Any) -> str:
    """`kind`, with ` (depthwise)` or ` (grouped)` when its weight (input 1) is grouped: (G, O/G, I/G, k, k)."""
    if op.get_input_size() < 2:
        return kind
    shape = op.input(1).get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 5:
        return kind
    per_group = shape[2]
    groups = 2  # a 5-D weight is a GroupConvolution's, whatever its group count
    return grouped_conv_label(kind, groups, per_group.get_length() if per_group.is_static else None)


def runtime_coverage(compiled: Any, types: Mapping[str, str] | None = None) -> OpCoverage:
    """The coverage of a compiled model; `types` (`operation_types` of the model compiled) names what its
    Subgraph kernels absorbed."""
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    for kind, precision, op in runtime_layers(compiled):
        if kind in NOT_COMPUTE:
            continue
        label = kind
        if kind == "Subgraph":
            absorbed = _absorbed(op, types or {})
            named = sorted({t for t in absorbed if t not in NOT_NAMED})
            if absorbed and all(t in (*BOUNDARY, DEQUANTIZATION) for t in absorbed):
                boundaries["FakeQuantize" if "FakeQuantize" in absorbed else DEQUANTIZATION] += 1  # as a kernel
                continue
            label = f"Subgraph({','.join(named)})" if named else kind
        elif kind in CONVOLUTIONS:
            label = _convolution_label(kind, op)
        if kind in BOUNDARY:
            boundaries[kind] += 1
        elif precision in INT8_PRECISIONS:
            int8[label] += 1
        elif precision in FLOAT_PRECISIONS:
            floating[label] += 1
    return OpCoverage(int8=dict(int8), float=dict(floating), boundaries=dict(boundaries))
