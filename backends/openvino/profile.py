"""OpenVINO's performance counters behind `OpenVinoSession.profile` (`segbench run --profile`).

`PERF_COUNT` is a compile property, so the profile comes from the session's model compiled again with
the session's own configuration (`compile_config`) plus `PERF_COUNT`, and an infer request of its own.
After each call, `request.profiling_info` holds one `ProfilingInfo` per node of the runtime graph (the
graph the CPU plugin runs after its fusions): node_name, node_type (Convolution, MaxPool, Reorder,
Subgraph, ...), exec_type (the kernel), real_time, cpu_time and status. Nodes fused into another
(status NOT_RUN) or removed (OPTIMIZED_OUT) are skipped. The CPU plugin's real_time is not one call's:
it is the node's mean over every call since compilation (its `PerfCount`: whole µs per call summed,
divided by the count; measured too, the counters decay from the first slow call towards the steady
time). So the counters are read after `WARMUP_CALLS` uncounted calls and again after the counted ones,
and the warm-up's share is taken out of the running total.

Precision comes from the exec_type's last token, which names the kernel's precision (OpenVINO 2026.4 on
an AMX CPU: `brgconv_avx512_amx_I8`, `brgconv_avx512_amx_i8`, `jit_avx512_i8`, `ref_i8`,
`brgconv_avx512_f32`, `brgconv_avx512_amx_bf16`, `jit_uni_f32`): i8/u8 -> int8, f32 -> fp32, bf16, f16.

Layers: each runtime node lists the operations of the compiled model it was made of (rt_info
`originalLayersNames`). A weighted operation (`backends.openvino.quantize.WEIGHTED_TYPES`) is named the way
`backends.onnx.layers.weighted_nodes` names an ONNX layer: its weight's tensor name minus ".weight" (a
float IR keeps the ONNX initializer's name), or the ONNX node's name when the weight is named otherwise
(a user's file). NNCF's int8 weights keep no name; there the layer comes from `layer_tensors` (module
path -> the ONNX tensor the layer wrote, stored with the artifact), matched against the tensor names
OpenVINO keeps on the layer's output (after its bias Add). Any other runtime node (a pooling, a concat,
a Reorder) takes the layer of the runtime nodes it reads, when they all have the same one; else "".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends.openvino.quantize import WEIGHTED_TYPES
from bench.backend import OpTime, Profile, op_category

METHOD = "openvino PERF_COUNT"
WARMUP_CALLS = 2
SKIPPED_STATUSES = ("NOT_RUN", "OPTIMIZED_OUT")
EXEC_PRECISIONS = {"i8": "int8", "u8": "int8", "f32": "fp32", "bf16": "bf16", "f16": "fp16"}
# Operations between a stored weight and the layer that uses it (NNCF's int8 weights: Constant ->
# Convert -> Subtract -> Multiply; a reshaped or transposed weight).
WEIGHT_PATH_TYPES = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "FakeQuantize", "Unsqueeze")
NOT_A_LAYER = ("Input", "Parameter", "Const", "Constant", "Output", "Result")


@dataclass(frozen=True)
class NodeTime:
    """One runtime node's time over the counted calls."""

    node_type: str
    exec_type: str
    calls: int
    total_us: float


@dataclass
class RuntimeNode:
    """A node of the compiled model's runtime graph."""

    name: str
    layer_type: str
    original: list[str] = field(default_factory=list)  # operations of the compiled model it was made of
    inputs: list[str] = field(default_factory=list)  # runtime nodes it reads


def exec_precision(exec_type: str) -> str:
    """int8, fp32, bf16 or fp16 from the kernel name's last token; "" when it names none ("undef")."""
    return EXEC_PRECISIONS.get(exec_type.rsplit("_", 1)[-1].lower(), "")


# ---------------------------------------------------------------- the profiled calls


@dataclass(frozen=True)
class Counter:
    """One runtime node's entry of `profiling_info`: the CPU plugin's mean real time per execution over
    every call the compiled model ran so far (whole µs per call, summed, divided by the count)."""

    node_type: str
    exec_type: str
    mean_us: float


def read_counters(infos: Any) -> dict[str, Counter]:
    """Runtime node name -> its counter, nodes that did not run left out."""
    return {
        info.node_name: Counter(str(info.node_type), str(info.exec_type), info.real_time.total_seconds() * 1e6)
        for info in infos
        if _status(info.status) not in SKIPPED_STATUSES
    }


def _status(status: Any) -> str:
    return str(getattr(status, "name", status)).rsplit(".", 1)[-1]


def counted_times(
    before: Mapping[str, Counter], after: Mapping[str, Counter], warmup: int, calls: int
) -> dict[str, NodeTime]:
    """Each node's total over the `calls` counted calls: OpenVINO's counters are means since compilation
    (CPU plugin `PerfCount`), so the warm-up's share is taken out of the running total:
    mean_after * (warmup + calls) - mean_before * warmup."""
    found: dict[str, NodeTime] = {}
    for name, counter in after.items():
        earlier = before.get(name)
        total = counter.mean_us * (warmup + calls) - (earlier.mean_us * warmup if earlier is not None else 0.0)
        found[name] = NodeTime(counter.node_type, counter.exec_type, calls, max(total, 0.0))
    return found


def profiled_calls(compiled: Any, inputs: np.ndarray, calls: int) -> tuple[float, dict[str, NodeTime]]:
    """(summed wall time of the counted calls in µs, runtime node name -> its time over them)."""
    request = compiled.create_infer_request()
    for _ in range(WARMUP_CALLS):
        request.infer({0: inputs})
    before = read_counters(request.profiling_info)
    wall_ns = 0
    for _ in range(calls):
        start = time.perf_counter_ns()
        request.infer({0: inputs})
        wall_ns += time.perf_counter_ns() - start
    return wall_ns / 1e3, counted_times(before, read_counters(request.profiling_info), WARMUP_CALLS, calls)


# ---------------------------------------------------------------- layers


def runtime_nodes(compiled: Any) -> list[RuntimeNode]:
    """The runtime graph in execution order, with what each node was made of and reads."""
    found = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        names = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
        found.append(
            RuntimeNode(
                op.get_friendly_name(),
                info["layerType"].astype(str),
                [name for name in names.split(",") if name],
                [inp.get_source_output().get_node().get_friendly_name() for inp in op.inputs()],
            )
        )
    return found


def _weight_names(op: Any) -> set[str]:
    """Tensor names of the constant a weighted operation's weight comes from (empty: none kept)."""
    node = op.input_value(1).get_node()
    while node.get_type_name() in WEIGHT_PATH_TYPES:
        node = node.input_value(0).get_node()
    return set(node.output(0).get_names()) if node.get_type_name() == "Constant" else set()


def _bias_add(op: Any) -> Any | None:
    """The Add that `ov.convert_model` puts after a layer with a bias (it carries the ONNX node's name)."""
    readers = [target.get_node() for target in op.output(0).get_target_inputs()]
    if len(readers) == 1 and readers[0].get_type_name() == "Add":
        return readers[0]
    return None


def _deepest_modules(layer_tensors: Mapping[str, str]) -> dict[str, str]:
    """Tensor -> the deepest module path that wrote it (a Sequential and its last child write the same)."""
    found: dict[str, str] = {}
    for module, tensor in layer_tensors.items():
        if tensor not in found or module.count(".") > found[tensor].count("."):
            found[tensor] = module
    return found


def operation_layers(model: Any, layer_tensors: Mapping[str, str] | None) -> dict[str, str]:
    """Friendly name of each weighted operation of `model` -> its layer (module docstring)."""
    modules = _deepest_modules(layer_tensors or {})
    found: dict[str, str] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_TYPES or op.get_input_size() < 2:
            continue
        weights = _weight_names(op)
        add = _bias_add(op)
        written = set(op.output(0).get_names()) | (set(add.output(0).get_names()) if add is not None else set())
        named = sorted(name for name in weights if name.endswith(".weight"))
        layer = named[0].removesuffix(".weight") if named else ""
        layer = layer or next((modules[t] for t in sorted(written) if t in modules), "")
        if not layer and weights:  # a weight named otherwise: the ONNX node's name, as weighted_nodes does
            layer = add.get_friendly_name() if add is not None else op.get_friendly_name()
        if layer:
            found[op.get_friendly_name()] = layer
    return found


def node_layers(
    nodes: list[RuntimeNode], operations: Mapping[str, str], onnx_nodes: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Runtime node name -> layer: the one layer of the weighted operations it was made of, else the one
    layer of the ONNX nodes it was made of (`onnx_nodes`: OpenVINO keeps the ONNX node names; a MaxPool
    is named by its module, as torch-eager's hooks name it), else (a node without any) the one layer of
    the runtime nodes it reads."""
    found: dict[str, str] = {}
    kinds = {node.name: node.layer_type for node in nodes}
    for node in nodes:
        if node.layer_type in NOT_A_LAYER:
            continue
        own = {operations[name] for name in node.original if name in operations}
        if not own and onnx_nodes:
            own = {onnx_nodes[name] for name in node.original if name in onnx_nodes}
        if not own:
            read = {found.get(name, "") for name in node.inputs if kinds.get(name) not in ("Const", "Constant")}
            own = read if len(read) == 1 else set()
        if len(own) == 1 and (layer := own.pop()):
            found[node.name] = layer
    return found


def node_category(node: NodeTime, runtime: RuntimeNode | None, types: Mapping[str, str]) -> str:
    """`op_category` of the node's type; a snippets `Subgraph` made only of, say, FakeQuantize operations
    (the input's quantization) takes theirs."""
    category = op_category(node.node_type)
    if node.node_type != "Subgraph" or runtime is None:
        return category
    inner = {op_category(types[name]) for name in runtime.original if name in types}
    return inner.pop() if len(inner) == 1 else category


# ---------------------------------------------------------------- the profile


def openvino_profile(
    model: Any,
    config: Mapping[str, Any],
    inputs: np.ndarray,
    calls: int,
    layer_tensors: Mapping[str, str] | None,
    onnx_nodes: Mapping[str, str] | None = None,
) -> Profile:
    """`calls` calls of `inputs` on `model` compiled with `config` and the performance counters on."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {**config, "PERF_COUNT": True})
    wall_us, counters = profiled_calls(compiled, inputs, calls)
    runtime = {node.name: node for node in runtime_nodes(compiled)}
    operations = operation_layers(model, layer_tensors)
    layers = node_layers(list(runtime.values()), operations, onnx_nodes)
    types = {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}
    ops = tuple(
        OpTime(
            name,
            node.node_type,
            layers.get(name, ""),
            exec_precision(node.exec_type),
            node.calls,
            node.total_us,
            node_category(node, runtime.get(name), types),
        )
        for name, node in counters.items()
    )
    return Profile(METHOD, calls, wall_us, ops, _attribution(layer_tensors, onnx_nodes), _notes(counters))


def _attribution(layer_tensors: Mapping[str, str] | None, onnx_nodes: Mapping[str, str] | None = None) -> str:
    source = (
        "weight tensor names, else the artifact's layer output tensors"
        if layer_tensors
        else "weight tensor names (no layer output tensors given: an NNCF int8 IR's weights keep no name)"
    )
    others = "the layer of their ONNX node, else the layer they read" if onnx_nodes else "the layer they read"
    return f"runtime graph originalLayersNames -> weighted operations -> {source}; other nodes: {others}"


def _notes(counters: Mapping[str, NodeTime]) -> str:
    kernels = sorted({node.exec_type for node in counters.values()})
    return f"real_time per runtime node (fused operations not listed); kernels: {', '.join(kernels)}"
