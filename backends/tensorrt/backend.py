"""TensorRT engines built from the exported ONNX graph, strongly typed, in int8 and fp16.

Over 400 lines (638), and kept whole: TensorRT cannot be installed where segbench is developed and
tested, so only its unavailable path and the mocked builder checks run here (tests/backends/tensorrt/).
Splitting the builder from the session would move code that no test here can run; it waits for a GPU
machine with TensorRT to confirm it. Its graphs already live apart (backends/tensorrt/graph.py).

TensorRT 11 removed the weak-typing builder flags (`BuilderFlag.INT8`, `BuilderFlag.FP16`, ...) and
the INT8 calibrators: a network is strongly typed, every tensor's type comes from the ONNX graph, and
reduced precision has to be *in the graph*. On TensorRT 10 the same behaviour is asked for with
`1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)`; on 11 that flag is deprecated and
ignored (strong typing is always on), so it is only passed to TensorRT 10. Both backends therefore
build an ONNX graph that already carries its precision (`backends.tensorrt.graph` makes and checks
it without TensorRT: the symmetric S8S8 Q/DQ graph for int8, an fp16 graph with float32 I/O for
fp16) and build it without any precision flag.

The artifact is the serialized engine alone (`model.engine`), so the reported model size is the
engine's. The intermediate ONNX graphs live in a temporary folder and are not kept; what is needed
from them (the int8 operator coverage, the checks) is recorded in the artifact's metadata.

Coverage (int8 only) comes from two places: `backends.onnxruntime.coverage.explicit_qdq_coverage` reads the
Q/DQ graph handed to TensorRT (no TensorRT needed); when TensorRT built the engine, `engine_coverage`
also reads the built engine's layers (engine inspector, DETAILED verbosity, an execution context with
a batch-1 shape so formats resolve) and counts TensorRT layers whose input is int8 — that is what
actually runs, so it is preferred when it could be read.

Both TensorRT backends live in this one module (about 630 lines, over the usual size): they share the
engine builder, the inspector, the session and its profile, and TensorRT's API is kept in one place.

Profile (`segbench run --profile`): a `trt.IProfiler` set as the execution context's profiler gets
`report_layer_time(layer, ms)` once per engine layer and call (`execute_async_v3` included, TensorRT 8.5
on); the calls after two warm-up calls are summed per layer. A layer's type and precision come from the
engine inspector (its first input's and output's data types); its module path from the ONNX node names
TensorRT joins into a fused layer's name ("node_conv2d + node_relu"), matched against the graph it was
built from (`profile_layers` in the metadata, `backends.onnxruntime.profile.onnx_node_layers`).

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

import json
import re
import tempfile
import time
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.onnx.export import EXPORT_LIBRARIES, fp32_onnx
from backends.onnx.node_layers import onnx_node_layers
from backends.onnxruntime.quantize import CalibrationMethod
from backends.tensorrt.graph import fp16_onnx, qdq_onnx_from_fp32
from bench.backend import (
    Artifact,
    Backend,
    BackendOptions,
    OpCoverage,
    OpTime,
    PrepareContext,
    Profile,
    QuantLayer,
    Session,
    parse_float_layers,
)
from bench.measure.device_timing import CudaEventTimer

if TYPE_CHECKING:
    import torch

ENGINE_FILE = "model.engine"
QDQ_FILE = "model.qdq.onnx"
FP16_FILE = "model.fp16.onnx"
WORKSPACE_BYTES = 1 << 30
NOT_IMPORTABLE = "tensorrt is not importable"
NO_CUDA = "no CUDA device"
PROFILE_METHOD = "tensorrt IProfiler"
PROFILE_WARMUP_CALLS = 2

# Engine-inspector layers that only move or reformat data: not counted either way.
ENGINE_BOOKKEEPING_LAYERS = (
    "Reformat",
    "NoOp",
    "Shuffle",
    "Constant",
    "Cast",
    "Slice",
    "Shape",
    "Identity",
    "Quantize",
    "Dequantize",
    "QuantizeLinear",
    "DequantizeLinear",
)


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


def _profiler(trt: Any, sink: LayerTimes) -> Any:
    """A `trt.IProfiler` that hands every layer time to `sink`."""

    class ForwardingProfiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            sink.report_layer_time(layer_name, ms)

    return ForwardingProfiler()


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


def build_engine(
    onnx_path: Path, engine_path: Path, input_shape: tuple[int, int, int], max_batch: int, opt_batch: int = 1
) -> dict[str, Any]:
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
    meta = {
        "tensorrt_version": str(trt.__version__),
        "engine_build_s": round(time.perf_counter() - start, 3),
        "gpu": torch.cuda.get_device_name(),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability())),
        "strongly_typed": True,
        "min_batch": 1,
        "opt_batch": opt_batch,
        "max_batch": max_batch,
    }
    try:
        layers = inspect_engine(engine_path, input_name, input_shape)
        found = engine_coverage(layers)
        if found is not None:
            meta["coverage_engine"] = found.to_meta()
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


def int8_coverage(meta: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(coverage, where it came from): the built engine's own layers when the inspector could read them,
    else the Q/DQ graph TensorRT was given."""
    if meta.get("coverage_engine"):
        return meta["coverage_engine"], "engine inspector"
    return meta.get("coverage_onnx"), "Q/DQ graph"


# ---------------------------------------------------------------- the profile (pure, but for the session's part)


class LayerTimes:
    """What a `trt.IProfiler` hears, summed per layer: `report_layer_time` is called once per layer and
    call; `clear` forgets the warm-up."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.total_ms: dict[str, float] = {}

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        self.calls[layer_name] = self.calls.get(layer_name, 0) + 1
        self.total_ms[layer_name] = self.total_ms.get(layer_name, 0.0) + float(ms)

    def clear(self) -> None:
        self.calls.clear()
        self.total_ms.clear()


def _tensor_precision(tensor: Any) -> str:
    """int8, fp16, bf16, fp32 or "" from a tensor as the inspector writes it (both schemas, see `_tensor_type`)."""
    if not isinstance(tensor, dict):
        return ""
    text = f"{tensor.get('DataType', '')} {tensor.get('Format/Datatype', '')}".lower()
    for precision, words in (
        ("int8", ("int8",)),
        ("fp16", ("fp16", "half")),
        ("bf16", ("bf16", "bfloat")),
        ("fp32", ("fp32", "float")),
    ):
        if any(word in text for word in words):
            return precision
    return ""


def engine_layer_info(engine_json: str) -> dict[str, tuple[str, str]]:
    """Layer name -> (LayerType, precision: the narrowest of its first input's and first output's types)
    from the engine inspector's JSON; an engine built without detailed verbosity lists names only."""
    data = json.loads(engine_json)
    found: dict[str, tuple[str, str]] = {}
    for layer in data.get("Layers", []) if isinstance(data, dict) else []:
        if not isinstance(layer, dict):
            continue
        tensors = [*(layer.get("Inputs") or [])[:1], *(layer.get("Outputs") or [])[:1]]
        precisions = {_tensor_precision(tensor) for tensor in tensors}
        precision = next((p for p in ("int8", "fp16", "bf16", "fp32") if p in precisions), "")
        found[str(layer.get("Name", ""))] = (str(layer.get("LayerType", "")), precision)
    return found


def tensorrt_layer(layer_name: str, node_layers: dict[str, str]) -> str:
    """The module path of a TensorRT layer, from the ONNX node names in its name: fused layers join them
    with " + ", Myelin regions name a range ("{ForeignNode[node_a...node_b]}"); "" when they name no
    layer or more than one."""
    tokens = re.split(r" \+ |\.\.\.", layer_name.removeprefix("{ForeignNode[").removesuffix("]}"))
    layers = {node_layers[token] for token in tokens if token in node_layers}
    return layers.pop() if len(layers) == 1 else ""


def tensorrt_profile(
    times: LayerTimes,
    calls: int,
    wall_us: float,
    layer_info: dict[str, tuple[str, str]],
    node_layers: dict[str, str],
    notes: str = "",
) -> Profile:
    """The profile of the counted calls: one `OpTime` per engine layer the profiler reported."""
    ops = tuple(
        OpTime(
            name,
            layer_info.get(name, ("", ""))[0],
            tensorrt_layer(name, node_layers),
            layer_info.get(name, ("", ""))[1],
            count,
            times.total_ms[name] * 1e3,
        )
        for name, count in times.calls.items()
    )
    attribution = (
        "ONNX node names in the engine's layer names, matched against the graph TensorRT was built from"
        if node_layers
        else "none: the artifact has no profile_layers (built before segbench recorded them)"
    )
    return Profile(PROFILE_METHOD, calls, wall_us, ops, attribution, notes)


def _torch_dtype(trt: Any, trt_dtype: Any) -> torch.dtype:
    import torch

    return torch.from_numpy(np.empty(0, dtype=trt.nptype(trt_dtype))).dtype


@dataclass
class TensorRtBindings:
    """One batch on the device and the output buffer the engine writes into."""

    input: torch.Tensor
    output: torch.Tensor


class TensorRtSession(Session):
    """A deserialized engine with one execution context, run on its own CUDA stream."""

    concurrent_runs = False  # one execution context: not safe from two threads at once; batch only

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
            raise RuntimeError(
                f"TensorRT could not load {engine_path.name} (built with TensorRT "
                f"{meta.get('tensorrt_version')} on {meta.get('gpu')}; this is TensorRT {trt.__version__} "
                f"on {torch.cuda.get_device_name(self.device)}): {'; '.join(self.logger.errors)}"
            )
        self.context = self.engine.create_execution_context()
        self.profile_layers: dict[str, str] = dict(meta.get("profile_layers") or {})
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"expected one input and one output tensor, got {inputs} and {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name))
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        self.memory_attribute = (
            "device_memory_size_v2" if hasattr(self.engine, "device_memory_size_v2") else "device_memory_size"
        )
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
            raise ValueError(
                f"batch of {len(batch)} is outside the engine's profile (1..{self.max_batch}); "
                "prepare with a larger max_batch option"
            )
        with torch.cuda.stream(self.stream):  # allocated on, and owned by, the session's stream
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.input_dtype).contiguous()
            self._set_shape(tuple(x.shape))
            self._bound = None
            shape = tuple(self.context.get_tensor_shape(self.output_name))
            y = torch.empty(shape, dtype=self.output_dtype, device=self.device)
        self.stream.synchronize()
        return TensorRtBindings(x, y)

    def run(self, inputs: TensorRtBindings) -> torch.Tensor:
        bound = (tuple(inputs.input.shape), inputs.input.data_ptr(), inputs.output.data_ptr())
        if bound != self._bound:  # rebinding only when the batch changed keeps host work out of the timing
            self._set_shape(bound[0])
            self.context.set_tensor_address(self.input_name, bound[1])
            self.context.set_tensor_address(self.output_name, bound[2])
            self._bound = bound
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT execute_async_v3 failed: {'; '.join(self.logger.errors[-3:])}")
        return inputs.output

    def to_numpy(self, outputs: torch.Tensor) -> np.ndarray:
        self.synchronize()
        return outputs.float().cpu().numpy()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def time_call(self, inputs: TensorRtBindings) -> int:
        return self.event_timer.time_ns(lambda: self.run(inputs))

    def profile(self, inputs: TensorRtBindings, calls: int, work_dir: Path) -> Profile:
        """`calls` runs with a `trt.IProfiler` on this context, after two warm-up runs it also hears (the
        first runs with a profiler set up its timing); each run waited for, so wall_us is host time.
        TensorRT writes no file; `work_dir` stays empty."""
        import tensorrt as trt

        times = LayerTimes()
        self.context.profiler = _profiler(trt, times)
        try:
            for _ in range(PROFILE_WARMUP_CALLS):
                self._profiled_run(inputs)
            times.clear()
            wall_ns = 0
            for _ in range(calls):
                start = time.perf_counter_ns()
                self._profiled_run(inputs)
                wall_ns += time.perf_counter_ns() - start
        finally:
            self._detach_profiler()
        info, notes = self._layer_info()
        return tensorrt_profile(times, calls, wall_ns / 1e3, info, self.profile_layers, notes)

    def _profiled_run(self, inputs: TensorRtBindings) -> None:
        self.run(inputs)
        self.synchronize()
        if not getattr(self.context, "enqueue_emits_profile", True):
            self.context.report_to_profiler()

    def _detach_profiler(self) -> None:
        try:
            self.context.profiler = None
        except TypeError:  # a binding that takes no None: the profiler stays, the profile is taken already
            pass

    def _layer_info(self) -> tuple[dict[str, tuple[str, str]], str]:
        """The inspector's layer types and precisions for this context, or none and why."""
        import tensorrt as trt

        try:
            inspector = self.engine.create_engine_inspector()
            inspector.execution_context = self.context
            return engine_layer_info(inspector.get_engine_information(trt.LayerInformationFormat.JSON)), ""
        except Exception as exc:  # the types and precisions are a bonus; the times stand without them
            return {}, f"engine inspector failed ({type(exc).__name__}: {exc}): no layer types or precisions"

    def reset_device_memory(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.device)

    def device_memory_peak(self) -> tuple[float, str] | None:
        import torch

        peak = torch.cuda.max_memory_allocated(self.device) + self.context_memory_bytes
        return peak / 2**20, (
            f"torch.cuda.max_memory_allocated (I/O buffers) + ICudaEngine.{self.memory_attribute} "
            "(TensorRT context memory; engine weights not counted)"
        )


# ---------------------------------------------------------------- the backends


@dataclass(frozen=True)
class TensorRtOptions(BackendOptions):
    """The engine's optimization profile: batch 1..max_batch, tuned for opt_batch."""

    max_batch: int = 32
    opt_batch: int = 1

    def check(self) -> str | None:
        if not 1 <= self.opt_batch <= self.max_batch:
            return f"need 1 <= opt_batch <= max_batch, got {self.opt_batch} and {self.max_batch}"
        return None


@dataclass(frozen=True)
class TensorRtInt8Options(TensorRtOptions):
    calibration: CalibrationMethod = "minmax"
    float_layers: str = ""  # module paths (or node names) left without Q/DQ: TensorRT runs them in float


class _TensorRtBackend(Backend):
    devices = ("cuda",)
    Options = TensorRtOptions
    # onnxruntime: its quantizer writes the int8 Q/DQ graph and its graph tools read both graphs.
    libraries = (*EXPORT_LIBRARIES, "onnxruntime", "tensorrt")
    takes_onnx = True
    module_prefix = ""  # taken off the ONNX graph's layer names for the profile

    def unavailable_reason(self, device: str) -> str | None:
        """A missing TensorRT is the first thing a user must fix, so it is named before the device."""
        try:
            import tensorrt  # noqa: F401
        except Exception:  # ImportError, or an OSError from a missing libnvinfer
            return NOT_IMPORTABLE
        return super().unavailable_reason(device) or tensorrt_unavailable_reason()

    @abstractmethod
    def _onnx(self, ctx: PrepareContext, folder: Path) -> tuple[Path, dict[str, Any]]:
        """The ONNX graph the engine is built from (QDQ int8 or fp16) and its metadata."""

    def _notes(self, meta: dict[str, Any]) -> str:
        return (
            f"TensorRT {meta.get('tensorrt_version')} strongly typed, batch 1..{meta.get('max_batch')} "
            f"(opt {meta.get('opt_batch')}), {meta.get('gpu')}"
        )

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        options = TensorRtOptions.of(ctx.options)
        with tempfile.TemporaryDirectory(prefix="segbench-trt-") as tmp:  # the ONNX graph stays out of the artifact
            onnx_path, meta = self._onnx(ctx, Path(tmp))
            built = build_engine(
                onnx_path, out_dir / ENGINE_FILE, ctx.input_shape, options.max_batch, options.opt_batch
            )
            layers = onnx_node_layers(onnx_path, self.module_prefix)
        meta = {**meta, **built, "precision": ctx.precision, "profile_layers": layers}
        return {**meta, "notes": self._notes(meta)}

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return TensorRtSession(artifact.directory / ENGINE_FILE, artifact.meta)


class TensorRtInt8Backend(_TensorRtBackend):
    """Explicit quantization: the symmetric S8S8 Q/DQ graph built strongly typed."""

    name = "tensorrt-int8"
    precisions = ("int8",)
    Options = TensorRtInt8Options
    float_counterparts = (("tensorrt-fp16", "fp16"),)  # TensorRT has no fp32 backend: fp16 is its float side

    def _onnx(self, ctx: PrepareContext, folder: Path) -> tuple[Path, dict[str, Any]]:
        path = folder / QDQ_FILE
        fp32 = fp32_onnx(ctx, folder / "model.fp32.onnx")  # the user's --onnx file when given
        options = TensorRtInt8Options.of(ctx.options)
        done = qdq_onnx_from_fp32(
            fp32,
            ctx.calibration,
            path,
            calibration_method=options.calibration,
            float_layers=parse_float_layers(options.float_layers),
        )
        return path, done

    def quantizable_layers(self, ctx: PrepareContext) -> list[QuantLayer]:
        """The QDQ graph's weighted nodes, as for ONNX Runtime (the same `nodes_to_exclude` mechanism)."""
        from backends.onnx.layers import weighted_nodes

        with tempfile.TemporaryDirectory(prefix="segbench-trt-") as tmp:
            return weighted_nodes(fp32_onnx(ctx, Path(tmp) / "model.fp32.onnx"))

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        meta = super().prepare(ctx, out_dir)
        coverage, source = int8_coverage(meta)
        notes = (
            f"{meta['notes']}; explicit Q/DQ S8S8, per-channel weights, {meta.get('calibration')} calibration, "
            f"{meta.get('int32_biases_folded')} int32 biases folded to float; coverage from {source}"
        )
        return {**meta, "coverage": coverage, "notes": notes}


class TensorRtFp16Backend(_TensorRtBackend):
    """fp16 ONNX (fp32 I/O) built strongly typed."""

    name = "tensorrt-fp16"
    precisions = ("fp16",)
    module_prefix = "inner."  # fp16_module wraps the model as `inner` (backends/tensorrt/graph.py)

    def _onnx(self, ctx: PrepareContext, folder: Path) -> tuple[Path, dict[str, Any]]:
        path = folder / FP16_FILE
        return path, fp16_onnx(ctx.model, ctx.input_shape, path)

    def _notes(self, meta: dict[str, Any]) -> str:
        return f"{super()._notes(meta)}; fp16 ONNX graph (model.half(), float32 input/output)"
