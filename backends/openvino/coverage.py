"""Which layers the compiled OpenVINO model really runs in int8, read from its runtime graph.

`CompiledModel.get_runtime_model()` is the graph the CPU plugin executes after its own fusions (an
NNCF FakeQuantize folded into the convolution before it, say); each node's `layerType` and
`runtimePrecision` say what it is and in which precision it runs. A compute node running in i8/u8 is
int8; in f32/bf16/f16, float; a FakeQuantize left standing only enters or leaves the int8 domain
(a boundary). Inputs, outputs, constants, reshapes and layout reorders are not compute and are not
counted, as in the ONNX rules (backends/onnxruntime/coverage.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.backend import OpCoverage

NOT_COMPUTE = ("Input", "Output", "Const", "Reshape", "Reorder", "Squeeze", "Unsqueeze", "ShapeOf", "Convert")
BOUNDARY = ("FakeQuantize",)
INT8_PRECISIONS = ("i8", "u8")
FLOAT_PRECISIONS = ("f32", "bf16", "f16")


def runtime_layers(compiled: Any) -> list[tuple[str, str, str]]:
    """(name, layerType, runtimePrecision) of every node of the compiled model's runtime graph."""
    found = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        found.append(
            (op.get_friendly_name(), info["layerType"].astype(str), info["runtimePrecision"].astype(str).lower())
        )
    return found


def runtime_coverage(compiled: Any) -> OpCoverage:
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    for _, kind, precision in runtime_layers(compiled):
        if kind in NOT_COMPUTE:
            continue
        if kind in BOUNDARY:
            boundaries[kind] += 1
        elif precision in INT8_PRECISIONS:
            int8[kind] += 1
        elif precision in FLOAT_PRECISIONS:
            floating[kind] += 1
    return OpCoverage(int8=dict(int8), float=dict(floating), boundaries=dict(boundaries))
