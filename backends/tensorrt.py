"""TensorRT engines built from the exported ONNX graph, strongly typed, in int8 and fp16.

TensorRT 11 removed the weak-typing builder flags (`BuilderFlag.INT8`, `BuilderFlag.FP16`, ...) and
the INT8 calibrators: a network is strongly typed, every tensor's type comes from the ONNX graph, and
reduced precision has to be *in the graph*. On TensorRT 10 the same behaviour is asked for with
`1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)`; on 11 that flag is deprecated and
ignored (strong typing is always on), so it is only passed to TensorRT 10. Both backends therefore
prepare an ONNX graph that already carries its precision, and build it without any precision flag:

- `tensorrt-int8` (explicit quantization): the fp32 export is quantized by `quantize_qdq(...,
  preset="tensorrt")` — symmetric S8S8 Q/DQ, every zero point 0, per-channel int8 weights along the
  output channels, calibrated on the suite's calibration split. ONNX Runtime's quantizer also turns
  every Conv/ConvTranspose bias into an int32 `DequantizeLinear`; TensorRT's parser takes int8
  `DequantizeLinear` inputs only (onnx-tensorrt's operator matrix; onnx/onnx-tensorrt#850,
  microsoft/onnxruntime#17738), so `fold_int32_bias` replaces each of them by the float initializer
  that `DequantizeLinear` computes (`(q - zero_point) * scale`, bit-for-bit the same values).
  `check_tensorrt_qdq` then verifies what TensorRT requires before anything is built.
- `tensorrt-fp16`: the model is exported after `copy.deepcopy(model).half()` inside a wrapper that
  casts the float32 input to fp16 and the logits back to float32. This is the graph ModelOpt AutoCast
  produces with `keep_io_types=True` (the conversion NVIDIA's 10.x-to-11.x migration guide prescribes
  for strong typing, and what samples/python/strongly_type_autocast does): fp16 weights and fp16
  compute with a Cast at each end, so the engine runs in fp16 while the runner still feeds float32.
  ModelOpt is not a dependency here; exporting the half-precision module gives the same graph shape.

The artifact is the serialized engine alone (`model.engine`), so the reported model size is the
engine's. The intermediate ONNX graphs live in a temporary folder and are not kept; what is needed
from them (the int8 operator coverage, the checks) is recorded in the artifact's metadata.

Coverage (int8 only) comes from two places. `qdq_coverage` reads the Q/DQ graph handed to TensorRT
and works without TensorRT: a Conv/ConvTranspose/Gemm/MatMul is int8 when its data and weight inputs
all come out of `DequantizeLinear`; any other compute node is int8 when its inputs come out of
`DequantizeLinear` and its outputs go only into `QuantizeLinear`. When TensorRT built the engine,
`engine_coverage` also reads the built engine's layers (engine inspector, DETAILED verbosity, an
execution context with a batch-1 shape so formats resolve) and counts TensorRT layers whose input
is int8 — that is what actually runs, so it is preferred when it could be read.

Engines are specific to the GPU and TensorRT version that built them; both are recorded in the
metadata. On a machine without `tensorrt` or without CUDA the backends report themselves unavailable
and never produce a number.

Timing: `run` enqueues `execute_async_v3` on the session's own `torch.cuda.Stream`; `time_call`
records `torch.cuda.Event(enable_timing=True)` start/end on that stream and waits for the end event.
Device memory: `torch.cuda.max_memory_allocated` (the input/output buffers, allocated through
PyTorch) plus the execution context's activation memory that TensorRT allocates itself
(`ICudaEngine.device_memory_size_v2`, `device_memory_size` before TensorRT 10.1); the engine's
weights are not included.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from abc import abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.backend import Artifact, Backend, OpCoverage, PrepareContext, Session
from bench.cuda_timing import CudaEventTimer
from bench.errors import UsageError
from bench.onnx_export import export_onnx, fp32_onnx
from bench.onnx_quant import CALIBRATION_METHODS, quantize_qdq
from bench.ort_session import BOUNDARY_OPS, META_OPS, coverage_from_meta, coverage_meta

if TYPE_CHECKING:
    import onnx
    import torch

ENGINE_FILE = "model.engine"
QDQ_FILE = "model.qdq.onnx"
FP16_FILE = "model.fp16.onnx"
WORKSPACE_BYTES = 1 << 30
NOT_IMPORTABLE = "tensorrt is not importable"
NO_CUDA = "no CUDA device"

WEIGHTED_OPS = {"Conv": 0, "ConvTranspose": 1}  # op -> output-channel axis of its weight (ConvTranspose: Cin, Cout/g, kH, kW)
LINEAR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Engine-inspector layers that only move or reformat data: not counted either way.
ENGINE_BOOKKEEPING_LAYERS = ("Reformat", "NoOp", "Shuffle", "Constant", "Cast", "Slice", "Shape", "Identity",
                             "Quantize", "Dequantize", "QuantizeLinear", "DequantizeLinear")


# ---------------------------------------------------------------- availability


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here (no `tensorrt` module, no CUDA device), or None."""
    try:
        import tensorrt  # noqa: F401
    except Exception:  # ImportError, or an OSError from a missing libnvinfer
        return NOT_IMPORTABLE
    import torch

    if not torch.cuda.is_available():
        return NO_CUDA
    return None


# ---------------------------------------------------------------- ONNX-side checks (no TensorRT needed)


def _load(model_or_path: "str | Path | onnx.ModelProto") -> "onnx.ModelProto":
    import onnx

    return model_or_path if isinstance(model_or_path, onnx.ModelProto) else onnx.load(str(model_or_path))


def _constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    found = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = numpy_helper.to_array(attr.t)
    return found


def _consumers(graph: Any) -> dict[str, list[tuple[Any, int]]]:
    found: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name:
                found[name].append((node, index))
    return found


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _label(node: Any) -> str:
    return f"{node.op_type} '{node.name or node.output[0]}'"


def check_tensorrt_qdq(onnx_path: "str | Path | onnx.ModelProto") -> list[str]:
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

    graph = _load(onnx_path).graph
    consts = _constants(graph)
    consumers = _consumers(graph)
    quantized_weights = {n.output[0]: consts[n.input[0]] for n in graph.node  # Q->DQ pairs on float weights
                         if n.op_type == "QuantizeLinear" and n.input[0] in consts}
    problems: list[str] = []
    for node in graph.node:
        if node.op_type not in BOUNDARY_OPS:
            continue
        label = _label(node)
        x = consts.get(node.input[0])
        weight = x if x is not None else quantized_weights.get(node.input[0])
        if node.op_type == "DequantizeLinear" and x is not None and x.dtype == np.int32:
            uses = ", ".join(sorted({f"{c.op_type} input {i}" for c, i in consumers[node.output[0]]})) or "unused"
            problems.append(f"{label}: int32 input (a quantized bias, feeding {uses}); TensorRT's DequantizeLinear "
                            "takes int8 only, so the bias must be folded to float")
            continue
        zp_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if zp_name is None:
            if node.op_type == "QuantizeLinear":
                out_type = _attr(node, "output_dtype", 0)
                if out_type in (0, TensorProto.UINT8):
                    problems.append(f"{label}: no zero point, so its output is uint8 (the ONNX default); "
                                    "TensorRT needs an int8 zero point of 0")
                elif out_type != TensorProto.INT8:
                    problems.append(f"{label}: output type {TensorProto.DataType.Name(out_type)}, not int8")
            elif x is not None and x.dtype != np.int8:
                problems.append(f"{label}: {x.dtype} input with no zero point; TensorRT's int8 path needs int8")
        else:
            zp = consts.get(zp_name)
            if zp is None:
                problems.append(f"{label}: zero point '{zp_name}' is not a constant")
            else:
                if zp.dtype == np.uint8:
                    problems.append(f"{label}: uint8 zero point (asymmetric U8 activations); TensorRT needs int8")
                elif zp.dtype != np.int8:
                    problems.append(f"{label}: {zp.dtype} zero point; TensorRT's int8 path needs int8")
                if np.any(zp != 0):
                    values = np.unique(zp)[:4].tolist()
                    problems.append(f"{label}: non-zero zero point {values}; TensorRT supports symmetric "
                                    "quantization only (zero point 0)")
        scale = consts.get(node.input[1])
        if scale is None:
            problems.append(f"{label}: scale '{node.input[1]}' is not a constant")
            continue
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            problems.append(f"{label}: scale has non-positive or non-finite values")
        if node.op_type != "DequantizeLinear" or weight is None:
            continue
        for consumer, index in consumers[node.output[0]]:
            if consumer.op_type not in WEIGHTED_OPS or index != 1:
                continue
            want = WEIGHTED_OPS[consumer.op_type]
            channels = weight.shape[want] if weight.ndim > want else 0
            where = f"weight of {_label(consumer)}"
            if scale.size <= 1:
                problems.append(f"{label}: per-tensor scale for the {where}; expected per-channel along axis {want} "
                                f"({channels} output channels)")
                continue
            axis = int(_attr(node, "axis", 1))
            axis = axis + weight.ndim if axis < 0 else axis
            if scale.ndim != 1 or axis != want or scale.size != channels:
                problems.append(f"{label}: {scale.size} scales along axis {axis} for the {where} of shape "
                                f"{list(weight.shape)}; expected per-channel along axis {want} ({channels} output channels)")
    return problems


def fold_int32_bias(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", int]:
    """Replace every `DequantizeLinear` of an int32 constant (ONNX Runtime's quantized bias) by the
    float initializer it computes, `(q - zero_point) * scale`; returns (new model, number folded)."""
    import onnx
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    consts = _constants(graph)
    kept, folded = [], []
    for node in graph.node:
        q = consts.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        scale = consts.get(node.input[1]) if q is not None else None
        if q is None or q.dtype != np.int32 or scale is None:
            kept.append(node)
            continue
        zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        values = q.astype(np.float64) - (0 if zp is None else _per_axis(zp, node, q.ndim))
        values = values * _per_axis(scale, node, q.ndim)
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


def _per_axis(values: np.ndarray, node: Any, rank: int) -> np.ndarray:
    """A scale or zero point shaped to broadcast over the quantized tensor (per-axis or scalar)."""
    values = values.astype(np.float64)
    if values.size <= 1 or rank <= 1:
        return values.reshape(-1)[0] if values.size == 1 else values
    axis = int(_attr(node, "axis", 1))
    axis = axis + rank if axis < 0 else axis
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


def qdq_coverage(onnx_path: "str | Path | onnx.ModelProto") -> OpCoverage:
    """Compute nodes of a Q/DQ graph that TensorRT runs in int8 vs float, read from the graph alone.

    A linear op (Conv, ConvTranspose, Gemm, MatMul) is int8 when all its data and weight inputs come
    out of DequantizeLinear; any other compute node is int8 when its non-constant inputs come out
    of DequantizeLinear and its outputs feed only QuantizeLinear. Q/DQ and shape bookkeeping are
    not counted.
    """
    graph = _load(onnx_path).graph
    consts = _constants(graph)
    consumers = _consumers(graph)
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    graph_outputs = {o.name for o in graph.output}
    int8: dict[str, int] = {}
    floating: dict[str, int] = {}
    for node in graph.node:
        op = node.op_type
        if op in BOUNDARY_OPS or op in META_OPS:
            continue
        if op in LINEAR_OPS:
            data = [name for name in node.input[:2] if name]
            quantized = bool(data) and all(name in dequantized for name in data)
        else:
            data = [name for name in node.input if name and name not in consts]
            outputs_quantized = all(
                name not in graph_outputs and consumers[name]
                and all(c.op_type == "QuantizeLinear" for c, _ in consumers[name])
                for name in node.output if name
            )
            quantized = bool(data) and all(name in dequantized for name in data) and outputs_quantized
        bucket = int8 if quantized else floating
        bucket[op] = bucket.get(op, 0) + 1
    return OpCoverage(int8=int8, float=floating)


def check_fp16_onnx(onnx_path: "str | Path | onnx.ModelProto") -> list[str]:
    """Problems that would keep a strongly typed build of this graph from running in fp16; [] if none:
    float32 weights (a strongly typed network computes in the weights' and inputs' type), or no
    fp16 Conv weight at all."""
    graph = _load(onnx_path).graph
    consts = _constants(graph)
    problems = [f"initializer '{name}' is float32" for name, value in consts.items() if value.dtype == np.float32]
    conv_weights = [consts.get(n.input[1]) for n in graph.node if n.op_type in WEIGHTED_OPS and len(n.input) > 1]
    if not any(w is not None and w.dtype == np.float16 for w in conv_weights):
        problems.append("no Conv/ConvTranspose has fp16 weights")
    return problems


# ---------------------------------------------------------------- preparing the ONNX graphs


def tensorrt_qdq_onnx(model: "torch.nn.Module", input_shape: tuple[int, int, int], calibration: np.ndarray,
                      out_path: Path, calibration_method: str = "minmax") -> dict[str, Any]:
    """fp32 export, then `qdq_onnx_from_fp32`; writes `out_path` (no TensorRT needed)."""
    with tempfile.TemporaryDirectory(prefix="segbench-trt-onnx-") as tmp:
        fp32 = export_onnx(model, input_shape, Path(tmp) / "model.onnx")
        return qdq_onnx_from_fp32(fp32, calibration, out_path, calibration_method)


def qdq_onnx_from_fp32(fp32_path: Path, calibration: np.ndarray, out_path: Path,
                       calibration_method: str = "minmax") -> dict[str, Any]:
    """`quantize_qdq(preset="tensorrt")` -> int32 biases folded -> `check_tensorrt_qdq`; writes
    `out_path` and returns what was done, or raises with the problems found."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="segbench-trt-qdq-") as tmp:
        raw = Path(tmp) / "model.qdq.raw.onnx"
        done = quantize_qdq(fp32_path, raw, calibration, preset="tensorrt", calibration_method=calibration_method)
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
    return {**done, "int32_biases_folded": count, "coverage_onnx": coverage_meta(qdq_coverage(folded))}


def fp16_module(model: "torch.nn.Module") -> "torch.nn.Module":
    """A half-precision copy of `model` that takes and returns float32 (the caller's model is untouched)."""
    from torch import nn

    class Fp16Model(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner.half()

        def forward(self, x):  # float32 in, fp16 inside, float32 out
            return self.inner(x.half()).float()

    return Fp16Model(copy.deepcopy(model).eval())


def fp16_onnx(model: "torch.nn.Module", input_shape: tuple[int, int, int], out_path: Path) -> dict[str, Any]:
    """Export an fp16 graph with float32 input and output (see the module docstring); checked."""
    export_onnx(fp16_module(model), input_shape, out_path)
    problems = check_fp16_onnx(out_path)
    if problems:
        raise RuntimeError(f"the fp16 ONNX graph is not fp16 throughout: {'; '.join(problems[:8])}")
    return {"onnx_precision": "fp16", "io_dtype": "float32", "fp16_method": "export of model.half() with Casts at I/O"}


# ---------------------------------------------------------------- the engine (TensorRT needed)


def _logger(trt: Any) -> Any:
    """A TensorRT logger that keeps errors (for exception messages) and drops the rest."""

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))

    return CollectingLogger()


def _major(trt: Any) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


def _network_flags(trt: Any) -> int:
    """STRONGLY_TYPED on TensorRT 10; 11 is always strongly typed (the flag is deprecated, ignored)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None or _major(trt) >= 11:
        return 0
    return 1 << int(flag)


def build_engine(onnx_path: Path, engine_path: Path, input_shape: tuple[int, int, int], max_batch: int,
                 opt_batch: int = 1) -> dict[str, Any]:
    """Parse `onnx_path`, build a strongly typed engine for batch 1..max_batch, write `engine_path`."""
    import tensorrt as trt
    import torch

    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {'; '.join(errors) or 'no error given'}")
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise RuntimeError(f"expected one input and one output, got {network.num_inputs} and {network.num_outputs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions in the inspector
    input_name = network.get_input(0).name
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, min=(1, *input_shape), opt=(opt_batch, *input_shape), max=(max_batch, *input_shape))
    config.add_optimization_profile(profile)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT could not build the engine: {'; '.join(logger.errors) or 'no error given'}")
    with open(engine_path, "wb") as f:
        f.write(plan)
    meta = {"tensorrt_version": str(trt.__version__), "engine_build_s": round(time.perf_counter() - start, 3),
            "gpu": torch.cuda.get_device_name(), "compute_capability": ".".join(map(str, torch.cuda.get_device_capability())),
            "strongly_typed": True, "min_batch": 1, "opt_batch": opt_batch, "max_batch": max_batch}
    try:
        layers = inspect_engine(engine_path, input_name, input_shape)
        found = engine_coverage(layers)
        if found is not None:
            meta["coverage_engine"] = coverage_meta(found)
    except Exception as exc:  # the inspector is a bonus; the ONNX-derived coverage still stands
        meta["coverage_engine_error"] = f"{type(exc).__name__}: {exc}"
    return meta


def inspect_engine(engine_path: Path, input_name: str, input_shape: tuple[int, int, int]) -> str:
    """The engine inspector's JSON for the whole engine, resolved for a batch-1 execution context."""
    import tensorrt as trt

    logger = _logger(trt)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    context = engine.create_execution_context()
    context.set_input_shape(input_name, (1, *input_shape))
    inspector = engine.create_engine_inspector()
    try:
        inspector.execution_context = context
    except AttributeError:  # TensorRT 8.x named it `context`
        inspector.context = context
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


def _tensor_type(tensor: Any) -> str | None:
    """'int8', 'float' or None from a layer input as the inspector writes it: TensorRT 10 has one
    'Format/Datatype' string ("Row major linear Int8 format"), TensorRT 11 a separate 'DataType'."""
    if not isinstance(tensor, dict):
        return None
    text = f"{tensor.get('DataType', '')} {tensor.get('Format/Datatype', '')}".lower()
    if "int8" in text:
        return "int8"
    if any(word in text for word in ("fp32", "float", "fp16", "half", "bf16")):
        return "float"
    return None  # e.g. "N/A due to dynamic shapes", or a layer-names-only engine


def engine_coverage(engine_json: str) -> OpCoverage | None:
    """TensorRT layers by type, int8 when their first input is int8; None if no layer's type could
    be read (then the ONNX-derived coverage is used). Pure: parses the inspector's JSON text."""
    data = json.loads(engine_json)
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    int8: dict[str, int] = {}
    floating: dict[str, int] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        kind = str(layer.get("LayerType", "Unknown"))
        if kind in ENGINE_BOOKKEEPING_LAYERS:
            continue
        inputs = layer.get("Inputs") or []
        found = _tensor_type(inputs[0]) if inputs else None
        if found is None:
            continue
        bucket = int8 if found == "int8" else floating
        bucket[kind] = bucket.get(kind, 0) + 1
    return OpCoverage(int8=int8, float=floating) if int8 or floating else None


def _torch_dtype(trt: Any, trt_dtype: Any) -> "torch.dtype":
    import torch

    return torch.from_numpy(np.empty(0, dtype=trt.nptype(trt_dtype))).dtype


@dataclass
class TensorRtBindings:
    """One batch on the device and the output buffer the engine writes into."""

    input: "torch.Tensor"
    output: "torch.Tensor"


class TensorRtSession(Session):
    """A deserialized engine with one execution context, run on its own CUDA stream."""

    timer = "cuda_event"

    def __init__(self, engine_path: Path, meta: dict[str, Any]) -> None:
        import tensorrt as trt
        import torch

        torch.cuda.init()
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.logger = _logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {engine_path.name} (built with TensorRT "
                               f"{meta.get('tensorrt_version')} on {meta.get('gpu')}; this is TensorRT {trt.__version__} "
                               f"on {torch.cuda.get_device_name(self.device)}): {'; '.join(self.logger.errors)}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"expected one input and one output tensor, got {inputs} and {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name))
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        self.memory_attribute = "device_memory_size_v2" if hasattr(self.engine, "device_memory_size_v2") else "device_memory_size"
        self.context_memory_bytes = int(getattr(self.engine, self.memory_attribute))
        self._bound: tuple[tuple[int, ...], int, int] | None = None
        self.stream = torch.cuda.Stream(self.device)
        self.event_timer = CudaEventTimer(self.stream)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if not self.context.set_input_shape(self.input_name, shape):
            raise RuntimeError(f"TensorRT rejected input shape {shape} (engine profile: batch 1..{self.max_batch})")

    def to_input(self, batch: np.ndarray) -> TensorRtBindings:
        import torch

        if not 1 <= len(batch) <= self.max_batch:
            raise ValueError(f"batch of {len(batch)} is outside the engine's profile (1..{self.max_batch}); "
                             "prepare with a larger max_batch option")
        with torch.cuda.stream(self.stream):  # allocated on, and owned by, the session's stream
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.input_dtype).contiguous()
            self._set_shape(tuple(x.shape))
            self._bound = None
            shape = tuple(self.context.get_tensor_shape(self.output_name))
            y = torch.empty(shape, dtype=self.output_dtype, device=self.device)
        self.stream.synchronize()
        return TensorRtBindings(x, y)

    def run(self, inputs: TensorRtBindings) -> "torch.Tensor":
        bound = (tuple(inputs.input.shape), inputs.input.data_ptr(), inputs.output.data_ptr())
        if bound != self._bound:  # rebinding only when the batch changed keeps host work out of the timing
            self._set_shape(bound[0])
            self.context.set_tensor_address(self.input_name, bound[1])
            self.context.set_tensor_address(self.output_name, bound[2])
            self._bound = bound
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT execute_async_v3 failed: {'; '.join(self.logger.errors[-3:])}")
        return inputs.output

    def to_numpy(self, outputs: "torch.Tensor") -> np.ndarray:
        self.synchronize()
        return outputs.float().cpu().numpy()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def time_call(self, inputs: TensorRtBindings) -> int:
        return self.event_timer.time_ns(lambda: self.run(inputs))

    def reset_device_memory(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.device)

    def device_memory_peak(self) -> tuple[float, str] | None:
        import torch

        peak = torch.cuda.max_memory_allocated(self.device) + self.context_memory_bytes
        return peak / 2**20, (f"torch.cuda.max_memory_allocated (I/O buffers) + ICudaEngine.{self.memory_attribute} "
                              "(TensorRT context memory; engine weights not counted)")


# ---------------------------------------------------------------- the backends


class _TensorRtBackend(Backend):
    devices = ("cuda",)
    options = {"max_batch": "32", "opt_batch": "1"}

    def unavailable_reason(self, device: str) -> str | None:
        """A missing TensorRT is the first thing a user must fix, so it is named before the device."""
        try:
            import tensorrt  # noqa: F401
        except Exception:  # ImportError, or an OSError from a missing libnvinfer
            return NOT_IMPORTABLE
        return super().unavailable_reason(device) or tensorrt_unavailable_reason()

    def _batches(self, options: dict[str, Any]) -> tuple[int, int]:
        try:
            max_batch, opt_batch = int(options.get("max_batch", 32)), int(options.get("opt_batch", 1))
        except ValueError as exc:
            raise UsageError(f"{self.name}: max_batch and opt_batch must be integers ({exc})") from exc
        if not 1 <= opt_batch <= max_batch:
            raise UsageError(f"{self.name}: need 1 <= opt_batch <= max_batch, got {opt_batch} and {max_batch}")
        return max_batch, opt_batch

    @abstractmethod
    def _onnx(self, ctx: PrepareContext, folder: Path) -> tuple[Path, dict[str, Any]]:
        """The ONNX graph the engine is built from (QDQ int8 or fp16) and its metadata."""

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        max_batch, opt_batch = self._batches(ctx.options)
        with tempfile.TemporaryDirectory(prefix="segbench-trt-") as tmp:  # the ONNX graph stays out of the artifact
            onnx_path, meta = self._onnx(ctx, Path(tmp))
            built = build_engine(onnx_path, out_dir / ENGINE_FILE, ctx.input_shape, max_batch, opt_batch)
        return {**meta, **built, "precision": ctx.precision}

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return TensorRtSession(artifact.directory / ENGINE_FILE, artifact.meta)

    def notes(self, artifact: Artifact) -> str:
        meta = artifact.meta
        return (f"TensorRT {meta.get('tensorrt_version')} strongly typed, batch 1..{meta.get('max_batch')} "
                f"(opt {meta.get('opt_batch')}), {meta.get('gpu')}")


class TensorRtInt8Backend(_TensorRtBackend):
    """Explicit quantization: the symmetric S8S8 Q/DQ graph built strongly typed."""

    name = "tensorrt-int8"
    precisions = ("int8",)
    options = {**_TensorRtBackend.options, "calibration": "minmax"}
    option_choices = {"calibration": CALIBRATION_METHODS}

    def _onnx(self, ctx: PrepareContext, folder: Path) -> tuple[Path, dict[str, Any]]:
        path = folder / QDQ_FILE
        fp32 = fp32_onnx(ctx, folder / "model.fp32.onnx")  # the user's --onnx file when given
        done = qdq_onnx_from_fp32(fp32, ctx.calibration, path, calibration_method=ctx.options.get("calibration", "minmax"))
        return path, done

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        meta = artifact.meta
        source = "coverage_engine" if meta.get("coverage_engine") else "coverage_onnx"
        return coverage_from_meta({"coverage": meta.get(source)})

    def notes(self, artifact: Artifact) -> str:
        meta = artifact.meta
        source = "engine inspector" if meta.get("coverage_engine") else "Q/DQ graph"
        return (f"{super().notes(artifact)}; explicit Q/DQ S8S8, per-channel weights, {meta.get('calibration')} "
                f"calibration, {meta.get('int32_biases_folded')} int32 biases folded to float; coverage from {source}")


class TensorRtFp16Backend(_TensorRtBackend):
    """fp16 ONNX (fp32 I/O) built strongly typed."""

    name = "tensorrt-fp16"
    precisions = ("fp16",)

    def _onnx(self, ctx: PrepareContext, folder: Path) -> tuple[Path, dict[str, Any]]:
        path = folder / FP16_FILE
        return path, fp16_onnx(ctx.model, ctx.input_shape, path)

    def notes(self, artifact: Artifact) -> str:
        return f"{super().notes(artifact)}; fp16 ONNX graph (model.half(), float32 input/output)"
