"""ONNX Runtime's own profiler behind `OrtSession.profile` (`segbench run --profile`).

ORT switches its profiler on with a session option, so the profile comes from a second session built
from the same file with the timed session's own options (threads, spinning, disabled optimizers,
providers) plus `enable_profiling`. That session also saves the graph it optimized (`optimized.onnx`
in the work folder): the profiler names the nodes of *that* graph (fused `QLinearConv`, NCHWc `Conv`,
`ReorderOutput_token_51`, ...), and the token numbers differ from one session to the next, so only the
profiled session's own optimized graph matches its events.

The profiler's JSON (Chrome trace format, kept in the work folder) holds one "Session" event
`model_run` per run and one "Node" event `<node>_kernel_time` per node and run, with `dur` in µs and
`args` op_name, provider, input_type_shape and output_type_shape. The first `WARMUP_CALLS` runs are
not counted: only node events inside the later `model_run` windows are.

Layers: a node is named by its weight the way `backends.onnx.layers.weighted_nodes` names a layer (the
weight initializer minus ".weight", else the node's name in the original graph). A weight is followed
back through a DequantizeLinear and its `_quantized` suffix (QDQ graphs, fused `QLinearConv`); where
ORT rewrote the weight (NCHWc reorders it into a new initializer) the bias names the layer, and where
neither is left the node's name, stripped of ORT's `_token_<n>`/`_nchwc` suffixes, is matched against
the original graph (a fused Conv+Relu is named after the Relu, whose input is the layer's, so an
activation right after a weighted node, Q/DQ between them or not, takes that node's layer). A node
without weights in a graph from segbench's (dynamo) export is named by the innermost module it was made
in (`pkg.torch.onnx.name_scopes`: a PRelu by its PReLU module, a residual Add by the block whose forward
adds), as torch-eager's module hooks name it. Any other node (Q/DQ, reorders, a user's graph without
that metadata) takes the layer of the nodes whose outputs it reads, when they all have the same one;
else it has no layer ("").

Precision: the narrowest type among the tensors a node reads and writes: int8 when any is 8-bit (so
a QLinearConv, a MaxPool on uint8, and also QuantizeLinear/DequantizeLinear, which work on the border
of the int8 domain; their category says so), else fp16/bf16, else fp32; "" for shape arithmetic.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.onnx.graph import GraphIndex, load_model
from backends.onnx.node_layers import graph_layers, original_layers, weight_layers
from bench.backend import OpTime, Profile

METHOD = "onnxruntime enable_profiling"
WARMUP_CALLS = 2
OPTIMIZED_FILE = "optimized.onnx"
PROFILE_PREFIX = "onnxruntime_profile"
KERNEL_SUFFIX = "_kernel_time"
# ORT's graph transformers name a rewritten node after the original with these suffixes.
ORT_SUFFIXES = re.compile(r"(?:_token_\d+|_nchwc)+$")
# ONNX element types (as the profiler writes them) -> segbench precision, narrowest first.
TYPE_PRECISIONS = {"int8": "int8", "uint8": "int8", "float16": "fp16", "bfloat16": "bf16", "float": "fp32"}
PRECISION_ORDER = ("int8", "fp16", "bf16", "fp32")


@dataclass
class NodeTime:
    """One node's profiler events, summed."""

    op_type: str
    provider: str
    precision: str
    calls: int = 0
    total_us: float = 0.0


# ---------------------------------------------------------------- the profiled session


def profiled_session(
    model_path: Path, make_options: Callable[[Path | None], Any], providers: list[str], work_dir: Path
) -> tuple[Any, Path | None, str]:
    """(session with the profiler on, its optimized graph or None, why there is none). `make_options`
    builds the timed session's options, saving the optimized graph to the path it is given."""
    import onnxruntime as ort

    optimized = work_dir / OPTIMIZED_FILE
    try:
        options = _with_profiler(make_options(optimized), work_dir)
        session = ort.InferenceSession(str(model_path), options, providers=providers)
    except Exception as exc:  # a graph ORT cannot serialize (compiled EP nodes, > 2 GB): profile without it
        options = _with_profiler(make_options(None), work_dir)
        session = ort.InferenceSession(str(model_path), options, providers=providers)
        return session, None, f"{type(exc).__name__}: {exc}"
    if not optimized.is_file():
        return session, None, "ONNX Runtime wrote no optimized graph"
    return session, optimized, ""


def _with_profiler(options: Any, work_dir: Path) -> Any:
    options.enable_profiling = True
    options.profile_file_prefix = str(work_dir / PROFILE_PREFIX)
    return options


def run_calls(session: Any, inputs: dict[str, Any], calls: int) -> float:
    """`WARMUP_CALLS` untimed runs, then `calls` timed ones; their summed wall time in µs."""
    for _ in range(WARMUP_CALLS):
        session.run(None, inputs)
    total_ns = 0
    for _ in range(calls):
        start = time.perf_counter_ns()
        session.run(None, inputs)
        total_ns += time.perf_counter_ns() - start
    return total_ns / 1e3


# ---------------------------------------------------------------- the profiler's events


def counted_node_events(events: list[dict[str, Any]], skip_runs: int) -> list[dict[str, Any]]:
    """Node events inside the `model_run` windows after the first `skip_runs` (the warm-up)."""
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"]
    )
    windows = [(float(run["ts"]), float(run["ts"]) + float(run["dur"])) for run in runs[skip_runs:]]
    return [
        event
        for event in events
        if event.get("cat") == "Node"
        and str(event.get("name", "")).endswith(KERNEL_SUFFIX)
        and any(start <= float(event["ts"]) <= end for start, end in windows)
    ]


def node_precision(args: dict[str, Any]) -> str:
    """The narrowest of the tensor types a node event reads and writes (module docstring)."""
    entries = [*args.get("input_type_shape", []), *args.get("output_type_shape", [])]
    found = {TYPE_PRECISIONS[kind] for entry in entries for kind in entry if kind in TYPE_PRECISIONS}
    return next((precision for precision in PRECISION_ORDER if precision in found), "")


def node_times(events: list[dict[str, Any]]) -> dict[str, NodeTime]:
    """Node name -> its events summed, in the order the nodes first ran."""
    found: dict[str, NodeTime] = {}
    for event in events:
        name = str(event["name"]).removesuffix(KERNEL_SUFFIX)
        args = event.get("args", {})
        node = found.get(name)
        if node is None:
            node = found[name] = NodeTime(str(args.get("op_name", "")), str(args.get("provider", "")), "")
        node.precision = node.precision or node_precision(args)
        node.calls += 1
        node.total_us += float(event.get("dur", 0))
    return found


# ---------------------------------------------------------------- layers


def strip_ort_suffixes(name: str) -> str:
    return ORT_SUFFIXES.sub("", name)


class LayerNames:
    """Profiled node name -> module path (module docstring): from ORT's optimized graph where it was
    saved, else by name against the original graph."""

    def __init__(self, original_path: Path, optimized_path: Path | None) -> None:
        original = GraphIndex(load_model(original_path))
        params = weight_layers(original)
        self.original = original_layers(original, params)
        # ORT's NCHWc transformer names a node after the tensor the original node wrote ("relu_nchwc").
        self.tensors = {
            t: self.original[n.name] for n in original.graph.node if n.name in self.original for t in n.output
        }
        self.optimized: dict[str, str] = {}
        if optimized_path is not None:
            optimized = GraphIndex(load_model(optimized_path))
            self.optimized = graph_layers(optimized, params, lambda node: self._by_name(node.name))

    def _by_name(self, name: str) -> str:
        """The original node of that name, or the one that wrote the tensor of that name, ORT's suffixes
        stripped."""
        for candidate in (name, strip_ort_suffixes(name)):
            layer = self.original.get(candidate) or self.tensors.get(candidate)
            if layer:
                return layer
        return ""

    def layer(self, node_name: str) -> str:
        return self.optimized.get(node_name) or self._by_name(node_name)


def attribution(optimized: Path | None, why_not: str) -> str:
    if optimized is not None:
        return (
            "weight initializers of ONNX Runtime's optimized graph (optimized.onnx), node names against the "
            "original graph where a weight was rewritten; other nodes: the layer of the nodes they read"
        )
    return f"node names matched against the original graph (no optimized graph: {why_not})"


# ---------------------------------------------------------------- the profile


def ort_profile(
    model_path: Path,
    make_options: Callable[[Path | None], Any],
    providers: list[str],
    inputs: dict[str, Any],
    calls: int,
    work_dir: Path,
) -> Profile:
    """`calls` runs of `inputs` in a profiled twin of the timed session (module docstring)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    session, optimized, why_not = profiled_session(model_path, make_options, providers, work_dir)
    wall_us = run_calls(session, inputs, calls)
    trace = Path(session.end_profiling())
    nodes = node_times(counted_node_events(json.loads(trace.read_text()), WARMUP_CALLS))
    names = LayerNames(model_path, optimized)
    ops = tuple(
        OpTime(name, node.op_type, names.layer(name), node.precision, node.calls, node.total_us)
        for name, node in nodes.items()
    )
    return Profile(METHOD, calls, wall_us, ops, attribution(optimized, why_not), _notes(nodes, trace))


def _notes(nodes: dict[str, NodeTime], trace: Path) -> str:
    notes = [f"profiler trace {trace.name}"]
    devices = sorted({node.provider for node in nodes.values()} - {"CPUExecutionProvider", ""})
    if devices:
        notes.append(f"nodes on {', '.join(devices)}: host-side times of asynchronous kernel launches")
    return "; ".join(notes)
