"""The ONNX graphs TensorRT is given, made and checked without TensorRT.

TensorRT 11 builds strongly typed networks only: reduced precision has to be *in the graph*. These
functions make and verify those graphs, so what TensorRT requires is tested on every machine:

- int8 (explicit quantization): the fp32 export quantized by `quantize_qdq(..., preset="tensorrt")`,
  symmetric S8S8 Q/DQ with every zero point 0 and per-channel int8 weights along the output channels.
  ONNX Runtime's quantizer also turns every Conv/ConvTranspose bias into an int32
  `DequantizeLinear`; TensorRT's parser takes int8 `DequantizeLinear` inputs only (onnx-tensorrt's
  operator matrix; onnx/onnx-tensorrt#850, microsoft/onnxruntime#17738), so `fold_int32_bias` replaces
  each by the float initializer it computes (bit-for-bit the same values). `check_tensorrt_qdq` then
  verifies what TensorRT requires before anything is built.
- fp16: the model exported after `copy.deepcopy(model).half()` inside a wrapper that casts the float32
  input to fp16 and the logits back: the graph ModelOpt AutoCast produces with `keep_io_types=True`
  (what NVIDIA's 10.x-to-11.x migration guide prescribes for strong typing), without ModelOpt.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.onnx.export import export_onnx
from backends.onnx.graph import GraphIndex, describe, load_model
from backends.onnxruntime.coverage import BOUNDARY_OPS, explicit_qdq_coverage
from backends.onnxruntime.quantize import quantize_qdq

if TYPE_CHECKING:
    import onnx
    import torch

# op -> output-channel axis of its weight (Conv: Cout, Cin/g, kH, kW; ConvTranspose: Cin, Cout/g, kH, kW)
WEIGHTED_OPS = {"Conv": 0, "ConvTranspose": 1}


def check_tensorrt_qdq(onnx_path: str | Path | onnx.ModelProto) -> list[str]:
    """Problems that keep a Q/DQ graph from TensorRT's int8 explicit-quantization path; [] if none.

    Checked: every QuantizeLinear/DequantizeLinear zero point is a constant int8 0 (TensorRT only
    does symmetric int8: a uint8 or non-zero zero point is rejected); a DequantizeLinear with an
    int32 input (ONNX Runtime's quantized bias) is not accepted by TensorRT's parser; scales are
    positive and finite constants; and the weight DequantizeLinear of each Conv/ConvTranspose is
    per-channel along the weight's output-channel axis — axis 0 for Conv (Cout, Cin/g, kH, kW),
    axis 1 for ConvTranspose (Cin, Cout/g, kH, kW). A per-tensor weight scale is legal TensorRT but
    is reported too: this backend promises per-channel weights.
    """
    from onnx import TensorProto

    index = GraphIndex(load_model(onnx_path))
    graph = index.graph
    quantized_weights = {
        n.output[0]: index.constant(n.input[0])
        for n in graph.node  # Q->DQ pairs on float weights
        if n.op_type == "QuantizeLinear" and index.is_constant(n.input[0])
    }
    problems: list[str] = []
    for node in graph.node:
        if node.op_type not in BOUNDARY_OPS:
            continue
        label = describe(node)
        x = index.constant(node.input[0])
        weight = x if x is not None else quantized_weights.get(node.input[0])
        if node.op_type == "DequantizeLinear" and x is not None and x.dtype == np.int32:
            uses = (
                ", ".join(
                    sorted(
                        {
                            f"{c.op_type} input {list(c.input).index(node.output[0])}"
                            for c in index.readers(node.output[0])
                        }
                    )
                )
                or "unused"
            )
            problems.append(
                f"{label}: int32 input (a quantized bias, feeding {uses}); TensorRT's DequantizeLinear "
                "takes int8 only, so the bias must be folded to float"
            )
            continue
        zp_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if zp_name is None:
            if node.op_type == "QuantizeLinear":
                out_type = index.attribute(node, "output_dtype", 0)
                if out_type in (0, TensorProto.UINT8):
                    problems.append(
                        f"{label}: no zero point, so its output is uint8 (the ONNX default); "
                        "TensorRT needs an int8 zero point of 0"
                    )
                elif out_type != TensorProto.INT8:
                    problems.append(f"{label}: output type {TensorProto.DataType.Name(out_type)}, not int8")
            elif x is not None and x.dtype != np.int8:
                problems.append(f"{label}: {x.dtype} input with no zero point; TensorRT's int8 path needs int8")
        else:
            zp = index.constant(zp_name)
            if zp is None:
                problems.append(f"{label}: zero point '{zp_name}' is not a constant")
            else:
                if zp.dtype == np.uint8:
                    problems.append(f"{label}: uint8 zero point (asymmetric U8 activations); TensorRT needs int8")
                elif zp.dtype != np.int8:
                    problems.append(f"{label}: {zp.dtype} zero point; TensorRT's int8 path needs int8")
                if np.any(zp != 0):
                    values = np.unique(zp)[:4].tolist()
                    problems.append(
                        f"{label}: non-zero zero point {values}; TensorRT supports symmetric "
                        "quantization only (zero point 0)"
                    )
        scale = index.constant(node.input[1])
        if scale is None:
            problems.append(f"{label}: scale '{node.input[1]}' is not a constant")
            continue
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            problems.append(f"{label}: scale has non-positive or non-finite values")
        if node.op_type != "DequantizeLinear" or weight is None:
            continue
        for consumer in index.readers(node.output[0]):
            if consumer.op_type not in WEIGHTED_OPS or list(consumer.input).index(node.output[0]) != 1:
                continue
            want = WEIGHTED_OPS[consumer.op_type]
            channels = weight.shape[want] if weight.ndim > want else 0
            where = f"weight of {describe(consumer)}"
            if scale.size <= 1:
                problems.append(
                    f"{label}: per-tensor scale for the {where}; expected per-channel along axis {want} "
                    f"({channels} output channels)"
                )
                continue
            axis = int(index.attribute(node, "axis", 1))
            axis = axis + weight.ndim if axis < 0 else axis
            if scale.ndim != 1 or axis != want or scale.size != channels:
                problems.append(
                    f"{label}: {scale.size} scales along axis {axis} for the {where} of shape "
                    f"{list(weight.shape)}; expected per-channel along axis {want} ({channels} output channels)"
                )
    return problems


def fold_int32_bias(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Replace every `DequantizeLinear` of an int32 constant (ONNX Runtime's quantized bias) by the
    float initializer it computes, `(q - zero_point) * scale`; returns (new model, number folded)."""
    import onnx
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    index = GraphIndex(model)
    kept, folded = [], []
    for node in graph.node:
        q = index.constant(node.input[0]) if node.op_type == "DequantizeLinear" else None
        scale = index.constant(node.input[1]) if q is not None else None
        if q is None or q.dtype != np.int32 or scale is None:
            kept.append(node)
            continue
        zp = index.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = int(index.attribute(node, "axis", 1))
        values = q.astype(np.float64) - (0 if zp is None else _per_axis(zp, axis, q.ndim))
        values = values * _per_axis(scale, axis, q.ndim)
        folded.append(numpy_helper.from_array(values.astype(scale.dtype), node.output[0]))
    if not folded:
        return model, 0
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(folded)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model, len(folded)


def _per_axis(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A scale or zero point shaped to broadcast over the quantized tensor (per-axis or scalar)."""
    values = values.astype(np.float64)
    if values.size <= 1 or rank <= 1:
        return values.reshape(-1)[0] if values.size == 1 else values
    axis = axis + rank if axis < 0 else axis
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


def check_fp16_onnx(onnx_path: str | Path | onnx.ModelProto) -> list[str]:
    """Problems that would keep a strongly typed build of this graph from running in fp16; [] if none:
    float32 weights (a strongly typed network computes in the weights' and inputs' type), or no
    fp16 Conv weight at all."""
    index = GraphIndex(load_model(onnx_path))
    consts = index.constants()
    problems = [f"initializer '{name}' is float32" for name, value in consts.items() if value.dtype == np.float32]
    conv_weights = [consts.get(n.input[1]) for n in index.graph.node if n.op_type in WEIGHTED_OPS and len(n.input) > 1]
    if not any(w is not None and w.dtype == np.float16 for w in conv_weights):
        problems.append("no Conv/ConvTranspose has fp16 weights")
    return problems


def qdq_onnx_from_fp32(
    fp32_path: Path,
    calibration: np.ndarray,
    out_path: Path,
    calibration_method: str = "minmax",
    float_layers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`quantize_qdq(preset="tensorrt")` -> int32 biases folded -> `check_tensorrt_qdq`; writes
    `out_path` and returns what was done, or raises with the problems found."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="segbench-trt-qdq-") as tmp:
        raw = Path(tmp) / "model.qdq.raw.onnx"
        done = quantize_qdq(
            fp32_path,
            raw,
            calibration,
            preset="tensorrt",
            calibration_method=calibration_method,
            float_layers=float_layers,
            backend="tensorrt-int8",
        )
        folded, count = fold_int32_bias(onnx.load(str(raw)))
    used = {node.domain for node in folded.graph.node} | {""}
    kept = [opset for opset in folded.opset_import if opset.domain in used]  # quant_pre_process lists ORT's own
    del folded.opset_import[:]
    folded.opset_import.extend(kept)
    onnx.save(folded, str(out_path))
    problems = check_tensorrt_qdq(folded)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise RuntimeError(f"the Q/DQ graph is not what TensorRT's int8 path accepts: {shown}")
    return {**done, "int32_biases_folded": count, "coverage_onnx": explicit_qdq_coverage(folded).to_meta()}


def fp16_module(model: torch.nn.Module) -> torch.nn.Module:
    """A half-precision copy of `model` that takes and returns float32 (the caller's model is untouched)."""
    from torch import nn

    class Fp16Model(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner.half()

        def forward(self, x):  # float32 in, fp16 inside, float32 out
            return self.inner(x.half()).float()

    return Fp16Model(copy.deepcopy(model).eval())


def fp16_onnx(model: torch.nn.Module, input_shape: tuple[int, int, int], out_path: Path) -> dict[str, Any]:
    """Export an fp16 graph with float32 input and output (see the module docstring); checked."""
    export_onnx(fp16_module(model), input_shape, out_path)
    problems = check_fp16_onnx(out_path)
    if problems:
        raise RuntimeError(f"the fp16 ONNX graph is not fp16 throughout: {'; '.join(problems[:8])}")
    return {"onnx_precision": "fp16", "io_dtype": "float32", "fp16_method": "export of model.half() with Casts at I/O"}
