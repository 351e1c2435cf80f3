"""What a backend's profiled pass returns (`Session.profile`): the time of every operator or kernel its
runtime reports, the model layer each implements, and the precision it ran in.

Why a separate pass, after the timing: every runtime's profiler adds cost (ONNX Runtime writes an
event per node, torch.profiler records every op, OpenVINO's counters are read per request), so the
latency columns never come from it. The profile answers *where* the time goes; `profile_overhead_pct`
in the row says how much slower the profiled calls ran than the cell's p50.

Categories (`op_category`) put the cost of entering, leaving and shuffling the int8 domain apart from
the layers' arithmetic, because that overhead is what most often eats an int8 model's expected gain:
`quantize` (float -> int8), `dequantize` (int8 -> float), `requantize` (int8 -> int8 at a new scale),
`reorder` (layout changes, copies and type conversions: Transpose, Reorder, contiguous, to/from oneDNN's blocked
layouts), and `compute` for everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATEGORIES = ("compute", "quantize", "dequantize", "requantize", "reorder")
OVERHEAD_CATEGORIES = ("quantize", "dequantize", "requantize", "reorder")

# Matched against the op type (lower-cased), first match wins; the names are each runtime's own:
# ONNX (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, Transpose, Reorder = ORT's
# ReorderInput/ReorderOutput of NCHWc), OpenVINO (FakeQuantize, Convert, Reorder, Transpose),
# torch (aten::quantize_per_tensor, aten::dequantize, quantized::requantize, aten::contiguous,
# aten::clone, aten::copy_, aten::to_dense, mkldnn reorders), TensorRT (Reformat, Quantize/Dequantize).
_CATEGORY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("requantize", re.compile(r"requant")),
    ("dequantize", re.compile(r"dequant")),
    ("quantize", re.compile(r"quantize_per|quantizelinear|fakequantize|^quantize$|^quantize_|::quantize$")),
    (
        "reorder",
        re.compile(
            r"reorder|^transpose$|::transpose|reformat|contiguous|aten::clone|aten::copy_|to_dense|to_mkldnn|"
            r"permute|^convert$|layout|copy_"
        ),
    ),
)


# A compiler's fused kernel names the ops it fuses (Inductor: cpp_fused__prelu_kernel_max_pool2d_quantize_per_tensor).
_FUSED = re.compile(r"(?:cpp|triton)_(?:poi_|red_|per_|tem_)?fused_(.*?)(?:_\d+)?$")
_BOUNDARY_PARTS = re.compile(
    r"(?:de)?quantize_per_(?:tensor|channel)(?:_default|_tensor)?|to_dtype|_to_copy|clone|view"
)


def op_category(op_type: str) -> str:
    """compute, quantize, dequantize, requantize or reorder, from the runtime's op type (see module doc).

    A fused kernel is compute when it fuses any op besides (de)quantization and copies: its time cannot
    be split between them, and calling a PReLU + max-pool + quantize kernel "quantize" would put the
    layer's arithmetic in the overhead bucket."""
    lowered = op_type.lower()
    fused = _FUSED.search(lowered)
    if fused:
        if _BOUNDARY_PARTS.sub("", fused.group(1)).strip("_"):
            return "compute"
        if "dequantize" in fused.group(1) and re.search(r"(?<!de)quantize", fused.group(1)):
            return "requantize"  # int8 -> float -> int8 at a new scale, in one kernel
    for category, pattern in _CATEGORY_PATTERNS:
        if pattern.search(lowered):
            return category
    return "compute"


@dataclass(frozen=True)
class OpTime:
    """One operator, node or kernel of the profiled pass, summed over the pass's calls.

    Times are exclusive of other reported ops (no op's time is counted twice), so a profile's ops sum
    to what the runtime spent in them. `layer` is the module path of the model layer it implements, or
    "" when the runtime gives no way to tell (`Profile.attribution` says how layers were found)."""

    name: str  # as the runtime names it: node name, kernel name, op name
    op_type: str  # the runtime's operator type (QLinearConv, quantized::conv2d_relu, Convolution, ...)
    layer: str  # module path of the model layer, "" when unknown
    precision: str  # int8, fp32, fp16, bf16; "" when the runtime does not say
    calls: int  # executions over the whole profiled pass
    total_us: float  # summed over the pass, in microseconds
    category: str = ""  # one of CATEGORIES; "" -> derived from op_type

    def __post_init__(self) -> None:
        if not self.category:
            object.__setattr__(self, "category", op_category(self.op_type))
        if self.category not in CATEGORIES:
            raise ValueError(f"op category {self.category!r} is not one of {', '.join(CATEGORIES)}")


@dataclass(frozen=True)
class Profile:
    """A profiled pass of one loaded session: `calls` calls of `run` on the timed batch, under
    `method` (the runtime's own profiler), `wall_us` their wall time with the profiler on."""

    method: str  # e.g. "onnxruntime enable_profiling", "torch.profiler", "openvino PERF_COUNT"
    calls: int
    wall_us: float
    ops: tuple[OpTime, ...]
    attribution: str  # how `OpTime.layer` was found, e.g. "module hooks", "ONNX weight initializers"
    notes: str = ""  # what the profile cannot see (fused kernels without a layer, say)

    @property
    def ops_us(self) -> float:
        return float(sum(op.total_us for op in self.ops))

    @property
    def attributed_us(self) -> float:
        return float(sum(op.total_us for op in self.ops if op.layer))
