"""torch.profiler for the torch sessions (`Session.profile` of torch-eager, torch-fx-int8 and
torchao-pt2e-int8): one profiled pass, its outermost operators, and a way per runtime to find their layer.

Over 400 lines on purpose for now: one profiler and the layer lookup of each of the three torch runtimes;
issue 32 moves each runtime's lookup into that runtime's folder, leaving the profiled pass here.

Why only the outermost operators: torch records every dispatcher call, and operators call operators
(aten::conv2d -> aten::convolution -> aten::mkldnn_convolution), so summing every event would count the
same microseconds several times. An operator with no operator among its ancestors is what the runtime
scheduled; its inclusive time covers its callees and no two of them overlap on the calling thread, so
their sum is what the calls spent in operators (on CUDA: the time of the kernels each one launched).
Ranges that are not operators (record_function ranges, ours and Inductor's "## Call CompiledFxGraph ##",
the TorchScript `forward`, Dynamo's "Torch-Compiled Region") are looked through, never counted.

Layers, by what each runtime keeps of the model:
- eager (`layer_ranges`): forward hooks on every module open a `layer::<path>` range around it; an
  operator belongs to the innermost range it runs in.
- TorchScript (`script_op_sequence`, `layers_in_graph_order`): no module is left to hook and the profiler
  sees no submodule call, but the graph still holds the calls; its operators in execution order, each
  with the module path it was called from, are aligned with each call's profiled operators by name.
- Inductor (`program_layers`, `layers_by_shapes`): no module survives compilation; an extern conv,
  linear or pool op is matched to the uncompiled program's op of that kind with the same weight and
  input shapes (the first unused one in graph order), whose `nn_module_stack` names the layer.

torch is imported inside the functions: the measure package is imported by processes that never profile.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.backend.profiling import OpTime, Profile

if TYPE_CHECKING:
    from torch import fx, jit, nn

METHOD = "torch.profiler"
WARMUP_CALLS = 2  # untimed calls before the profiler starts (allocator, oneDNN primitive caches, JIT)
TRACE_FILE = "torch_profiler_trace.json"  # the profiler's own trace, in the session's work_dir
CALL_RANGE = "segbench call "  # + the call's index: the record_function range around each profiled call
LAYER_RANGE = "layer::"  # + module path: the range the eager hooks open around each leaf module
USER_SCOPE = 7  # torch's RecordScope::USER_SCOPE: record_function ranges, never operators

_NAMESPACED = re.compile(r"^\w+::\w")  # aten::, quantized::, onednn::, mkldnn::, prims::, ...
# Inductor's kernels, as `cpp.enable_kernel_profile` names them: graph_<id>_cpp_fused_<ops>_<index>
_KERNEL = re.compile(r"^(graph_\d+_)?((cpp|triton)_\w+?)(_\d+)?$")
_INT8_OPS = re.compile(r"^(quantized::|onednn::q)")
INT8_DTYPES = frozenset(
    {"signed char", "unsigned char", "c10::qint8", "c10::quint8", "c10::qint32", "c10::quint4x2", "c10::quint2x4"}
)
FLOAT_DTYPES = {"float": "fp32", "c10::Half": "fp16", "c10::BFloat16": "bf16"}
# Extern ops Inductor leaves in a compiled program, by the kind of model op they implement (first match).
_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("conv_transpose", re.compile(r"conv_?transpose|convolution_transpose|deconv")),
    ("conv", re.compile(r"conv")),
    ("linear", re.compile(r"linear|addmm|\bmm\b")),
    ("max_pool", re.compile(r"max_pool")),
    ("avg_pool", re.compile(r"avg_pool")),
)
WEIGHTED_FAMILIES = ("conv_transpose", "conv", "linear")
# TorchScript nodes that turn a one-element tensor into a number (a quantized op's scale held as a
# tensor): the interpreter runs them as Tensor.item(), which is what the profiler records.
_RECORDED_AS = dict.fromkeys(
    ("aten::Float", "aten::Int", "aten::ScalarImplicit", "aten::FloatImplicit", "aten::IntImplicit"), "aten::item"
)


@dataclass(frozen=True)
class OpEvent:
    """One outermost operator of one profiled call."""

    name: str
    call: int  # which profiled call it ran in, from 0
    us: float  # inclusive CPU time; on CUDA the device time of every kernel it (or its callees) launched
    precision: str
    range_layer: str  # the innermost `layer::` range around it, "" when none
    shapes: tuple[tuple[int, ...], ...]  # its inputs' shapes as recorded (() for a non-tensor input)


@dataclass(frozen=True)
class ProfiledCalls:
    """A profiled pass: its operators, ready to be given layers and summed into a `Profile`."""

    calls: int
    wall_us: float
    events: tuple[OpEvent, ...]  # call by call, each call's operators in the order they started
    outside_us: float  # operator time outside the profiled calls (another thread): not counted
    cuda: bool

    def to_profile(self, layers: Sequence[str], attribution: str, notes: str = "") -> Profile:
        """`layers[i]` is the layer of `events[i]`; the notes get what the profile cannot see."""
        ops = aggregate(self.events, layers)
        timing = (
            "op time: CUDA kernel time of each outermost torch op's kernels"
            if self.cuda
            else "op time: inclusive CPU time of each outermost torch op"
        )
        parts = [notes, timing, unattributed(ops), uneven_calls(self.events, self.calls)]
        if self.outside_us:
            parts.append(f"{self.outside_us:.0f} us of operators ran outside the profiled calls' thread, not counted")
        return Profile(
            method=METHOD,
            calls=self.calls,
            wall_us=self.wall_us,
            ops=ops,
            attribution=attribution,
            notes="; ".join(part for part in parts if part),
        )


def profile_calls(
    run: Callable[[], object],
    synchronize: Callable[[], None],
    calls: int,
    work_dir: Path,
    *,
    cuda: bool = False,
) -> ProfiledCalls:
    """`WARMUP_CALLS` untimed calls, then `calls` calls under torch.profiler (CPU, and CUDA when `cuda`),
    each in its own range so its operators are told apart from the others'; the wall time covers the
    profiled calls only. The trace goes to `work_dir` for a closer look."""
    from torch.profiler import ProfilerActivity, profile, record_function

    if calls < 1:
        raise ValueError(f"a profile needs at least one call, got {calls}")
    for _ in range(WARMUP_CALLS):
        run()
        synchronize()
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities, record_shapes=True) as profiler:
        start = time.perf_counter_ns()
        for call in range(calls):
            with record_function(f"{CALL_RANGE}{call}"):
                run()
                synchronize()
        wall_ns = time.perf_counter_ns() - start
    work_dir.mkdir(parents=True, exist_ok=True)
    profiler.export_chrome_trace(str(work_dir / TRACE_FILE))
    events, outside_us = outermost_ops(profiler.events(), cuda, list_precisions(profiler))
    return ProfiledCalls(calls, wall_ns / 1e3, tuple(events), outside_us, cuda)


def is_operator(event: Any) -> bool:
    """A dispatcher op (namespaced name) or an Inductor kernel; record_function ranges are not."""
    if event.scope == USER_SCOPE or event.is_user_annotation:
        return False
    return bool(_NAMESPACED.match(event.name) or _KERNEL.match(event.name))


def _ancestors(event: Any) -> Iterator[Any]:
    parent = event.cpu_parent
    while parent is not None:
        yield parent
        parent = parent.cpu_parent


def _enclosing(event: Any) -> tuple[int | None, str]:
    """(the profiled call it ran in, or None; the innermost `layer::` range around it, or "")."""
    call, layer = None, None
    for parent in _ancestors(event):
        if layer is None and parent.name.startswith(LAYER_RANGE):
            layer = parent.name.removeprefix(LAYER_RANGE)
        if parent.name.startswith(CALL_RANGE):
            call = int(parent.name.removeprefix(CALL_RANGE))
            break
    return call, layer or ""


def outermost_ops(
    events: Sequence[Any], cuda: bool, by_list: Mapping[int, str] | None = None
) -> tuple[list[OpEvent], float]:
    """Every operator event with no operator among its ancestors, in call and start order; and the
    time of those that ran outside every profiled call. `by_list`: `list_precisions`."""
    from torch.autograd import DeviceType

    found: list[tuple[int, float, OpEvent]] = []
    outside_us = 0.0
    for event in events:
        if event.device_type != DeviceType.CPU or event.is_async or not is_operator(event):
            continue
        if any(is_operator(parent) for parent in _ancestors(event)):
            continue
        us = float(event.device_time_total if cuda else event.cpu_time_total)
        call, layer = _enclosing(event)
        if call is None:
            outside_us += us
            continue
        shapes = tuple(tuple(int(size) for size in shape) for shape in event.input_shapes or ())
        precision = op_precision(event) or (by_list or {}).get(event.id, "")
        found.append((call, event.time_range.start, OpEvent(event.name, call, us, precision, layer, shapes)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [op for _, _, op in found], outside_us


def _dtype_precision(dtypes: Sequence[str]) -> str:
    if any(dtype in INT8_DTYPES for dtype in dtypes):
        return "int8"
    return next((FLOAT_DTYPES[dtype] for dtype in dtypes if dtype in FLOAT_DTYPES), "")


def op_precision(event: Any, depth: int = 3) -> str:
    """int8 for quantized ops and int8/uint8 inputs, else the float type of the inputs. An input list
    (aten::cat's TensorList) records no dtype; its callees' inputs may tell, else `list_precisions`.
    "" when nothing does (Inductor kernels record no inputs)."""
    if _INT8_OPS.match(event.name):
        return "int8"
    if found := _dtype_precision(event.input_dtypes or ()):
        return found
    if depth > 0:
        for child in event.cpu_children:
            if found := op_precision(child, depth - 1):
                return found
    return ""


def list_precisions(profiler: Any) -> dict[int, str]:
    """Precision of each op with a tensor-list input, by event id: the profiler's event list records such
    an input as "TensorList", its (experimental) event tree keeps each tensor's dtype. {} when this torch's
    tree is not as expected; those ops' precision then stays unknown."""
    import torch

    names = {torch.float32: "float", torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16"}
    names.update(dict.fromkeys((torch.int8, torch.uint8, torch.qint8, torch.quint8, torch.qint32), "c10::qint8"))
    found: dict[int, str] = {}
    try:
        pending = list(profiler.profiler.kineto_results.experimental_event_tree())
        while pending:
            node = pending.pop()
            pending.extend(node.children)
            lists = [item for item in getattr(node.extra_fields, "inputs", ()) if isinstance(item, list)]
            dtypes = [names.get(getattr(t, "dtype", None), "") for items in lists for t in items]
            if precision := _dtype_precision(dtypes):
                found[node.correlation_id] = precision
    except (AttributeError, TypeError):
        return {}
    return found


def op_type(name: str) -> str:
    """The operator's type: its name, or for an Inductor kernel the name without graph id and index
    (graph_0_cpp_fused_cat_quantize_per_tensor_3 -> cpp_fused_cat_quantize_per_tensor)."""
    match = _KERNEL.match(name)
    return match.group(2) if match and not _NAMESPACED.match(name) else name


def aggregate(events: Sequence[OpEvent], layers: Sequence[str]) -> tuple[OpTime, ...]:
    """One OpTime per (op, layer, precision), in the order they first ran."""
    if len(layers) != len(events):
        raise ValueError(f"{len(layers)} layers for {len(events)} operator events")
    totals: dict[tuple[str, str, str], tuple[int, float]] = {}
    for event, layer in zip(events, layers):
        key = (event.name, layer, event.precision)
        calls, us = totals.get(key, (0, 0.0))
        totals[key] = (calls + 1, us + event.us)
    return tuple(
        OpTime(
            name=name,
            op_type=op_type(name),
            layer=layer,
            precision=precision,
            calls=calls,
            total_us=us,
            category=_category(name),
        )
        for (name, layer, precision), (calls, us) in totals.items()
    )


def _category(name: str) -> str:
    """`compute` for convolutions and linear layers, whatever their name holds (a transposed conv is not
    a layout change, though `op_category` reads "transpose" as one); "" (from the op type) otherwise."""
    return "compute" if op_family(name) in WEIGHTED_FAMILIES else ""


def unattributed(ops: Sequence[OpTime]) -> str:
    """How much op time has no layer, and its largest op types."""
    total = sum(op.total_us for op in ops)
    missing: dict[str, float] = {}
    for op in ops:
        if not op.layer:
            missing[op.op_type] = missing.get(op.op_type, 0.0) + op.total_us
    if not total or not missing:
        return "every op has a layer" if total else ""
    largest = sorted(missing.items(), key=lambda item: item[1], reverse=True)[:3]
    named = ", ".join(f"{kind} {us / total * 100:.1f}%" for kind, us in largest)
    return f"{sum(missing.values()) / total * 100:.1f}% of op time has no layer ({named})"


def uneven_calls(events: Sequence[OpEvent], calls: int) -> str:
    """A warning when the calls did not all run the same number of operators (a recompile, a lazy
    initialisation): the per-call figures are then an average of different programs."""
    counts = Counter(event.call for event in events)
    per_call = [counts.get(call, 0) for call in range(calls)]
    if len(set(per_call)) <= 1:
        return ""
    return f"the profiled calls ran {min(per_call)} to {max(per_call)} operators each"


# --- eager: a range per leaf module ---------------------------------------------------------------------


@contextmanager
def layer_ranges(model: nn.Module) -> Iterator[None]:
    """While inside, every module runs inside a `layer::<module path>` record_function range (forward
    pre-hook opens it, forward hook closes it, even when the forward raises); removed after. Ranges nest,
    and an op takes the innermost: a conv its Conv2d's path, a residual add the block whose forward adds
    (as the ONNX export's name scopes name the same nodes)."""
    from torch.autograd.profiler import record_function

    opened: list[Any] = []

    def opener(path: str) -> Callable[..., None]:
        def enter(module: Any, args: Any) -> None:
            scope = record_function(LAYER_RANGE + path)
            scope.__enter__()
            opened.append(scope)

        return enter

    def close(module: Any, args: Any, output: Any) -> None:
        if opened:
            opened.pop().__exit__(None, None, None)

    handles = []
    for path, module in model.named_modules():
        if path:  # every module but the model itself: an op a block's own forward runs (a residual add)
            handles.append(module.register_forward_pre_hook(opener(path)))
            handles.append(module.register_forward_hook(close, always_call=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        while opened:
            opened.pop().__exit__(None, None, None)


# --- TorchScript: the graph's operators in order, with the module each was called from -----------------


def _nodes(nodes: Any) -> Iterator[Any]:
    """A graph's nodes in program order, each block's nodes right after the node that owns it."""
    for node in nodes:
        yield node
        for block in node.blocks():
            yield from _nodes(block.nodes())


def _top_level_calls(graph: Any) -> list[tuple[str, str]]:
    """(module path, attribute name) of each submodule call of the top-level graph, in program order:
    the path from the chain of prim::GetAttr that fetched the submodule from `self`."""
    paths = {next(iter(graph.inputs())).unique(): ""}
    calls = []
    for node in _nodes(graph.nodes()):
        kind = node.kind()
        if kind == "prim::GetAttr" and node.input().unique() in paths:
            owner, name = paths[node.input().unique()], node.s("name")
            paths[node.output().unique()] = f"{owner}.{name}" if owner else name
        elif kind == "prim::CallMethod" and node.inputsAt(0).unique() in paths:
            path = paths[node.inputsAt(0).unique()]
            calls.append((path, path.rpartition(".")[2]))
    return calls


def _call_levels(hierarchy: str) -> list[str]:
    """The attribute names of the method calls a node was inlined from, outermost first, up to the first
    function call ('0(ConvReLU2d).UNKNOWN_INSTANCE(UNKNOWN_TYPE)' -> ['0']), without a module's calls of
    its own methods (SELF); [] for a node of the top-level graph itself or of a function it calls."""
    names = re.findall(r"([^.()]+)\([^()]*\)", hierarchy)
    return [name for name in itertools.takewhile(lambda name: name != "UNKNOWN_INSTANCE", names) if name != "SELF"]


def script_op_sequence(module: jit.ScriptModule) -> list[tuple[str, str]]:
    """(op kind, module path) of every non-prim node the interpreter may run, in program order.

    The inlined graph holds every op (submodule methods and functions alike) and, per node, the chain of
    calls it was inlined from, but each level names only the attribute the call went through ('0', not
    'encoder.0.0' when the graph fetched encoder, 0 and 0 before calling); the un-inlined graph's GetAttr
    chains give each top-level call's whole path, in order. Each run of nodes inlined from one call takes
    the next top-level call of that attribute name; a call nested in it adds its attribute name (exact for
    `self.child(x)`, as nn.Sequential makes them). Ops of the top-level graph (quantize, dequantize, cat,
    functional calls) get "".
    """
    import torch

    calls = _top_level_calls(module.graph)
    graph = module.graph.copy()
    torch._C._jit_pass_inline(graph)
    sequence: list[tuple[str, str]] = []
    cursor, current, current_level = 0, "", None
    for node in _nodes(graph.nodes()):
        levels, kind = _call_levels(node.getModuleHierarchy()), node.kind()
        if not levels:
            if kind == "prim::GetAttr" or not kind.startswith("prim::"):  # back in the top-level graph
                current_level = None
            path = ""
        else:
            if levels[0] != current_level:  # the next call's nodes begin
                hit = next((i for i in range(cursor, len(calls)) if calls[i][1] == levels[0]), None)
                cursor, current = (hit + 1, calls[hit][0]) if hit is not None else (cursor, "")
                current_level = levels[0]
            path = ".".join([current, *levels[1:]]) if current else ""
        if not kind.startswith("prim::"):
            sequence.append((_RECORDED_AS.get(kind, kind), path))
    return sequence


def align(names: Sequence[str], kinds: Sequence[str]) -> list[int | None]:
    """For each name, the index of the kind it is matched to in a longest common subsequence of the two
    (both keep their order; graph nodes that did not run, or record no event, are skipped), or None."""
    n, m = len(names), len(kinds)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if names[i] == kinds[j] else max(below[j], row[j + 1])
    matched: list[int | None] = []
    i = j = 0
    while i < n:
        if j < m and names[i] == kinds[j]:
            matched.append(j)
            i, j = i + 1, j + 1
        elif j < m and table[i][j + 1] >= table[i + 1][j]:
            j += 1
        else:
            matched.append(None)
            i += 1
    return matched


def layers_in_graph_order(events: Sequence[OpEvent], sequence: Sequence[tuple[str, str]]) -> tuple[list[str], int]:
    """Each event's layer from its aligned graph node, call by call; and how many matched no node."""
    names = {event.name for event in events}
    nodes = [(kind, path) for kind, path in sequence if kind in names]
    kinds = [kind for kind, _ in nodes]
    by_call: dict[int, list[OpEvent]] = {}
    for event in events:
        by_call.setdefault(event.call, []).append(event)
    alignments: dict[tuple[str, ...], list[int | None]] = {}  # every call usually runs the same ops
    layers: list[str] = []
    unmatched = 0
    for call in sorted(by_call):
        called = tuple(event.name for event in by_call[call])
        if called not in alignments:
            alignments[called] = align(called, kinds)
        for index in alignments[called]:
            unmatched += index is None
            layers.append("" if index is None else nodes[index][1])
    return layers, unmatched


# --- Inductor: extern ops matched to the uncompiled program's layers by shapes ---------------------------


@dataclass(frozen=True)
class ProgramLayer:
    """A conv, linear or pool op of an uncompiled (exported) program, and the layer it belongs to."""

    family: str
    layer: str
    activation: tuple[int | None, ...]  # input shape without the batch dimension (None: symbolic)
    weight: tuple[int, ...] | None


def op_family(name: str) -> str | None:
    """conv_transpose, conv, linear, max_pool or avg_pool for an op of those kinds; None otherwise
    (Inductor's fused kernels included: they are not one model op)."""
    if _KERNEL.match(name) and not _NAMESPACED.match(name):
        return None
    lowered = name.lower()
    return next((family for family, pattern in _FAMILIES if pattern.search(lowered)), None)


def _node_shape(arg: Any) -> tuple[int | None, ...] | None:
    value = getattr(arg, "meta", {}).get("val")
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return tuple(int(size) if str(size).isdigit() else None for size in shape)


def program_layers(graph: fx.Graph) -> list[ProgramLayer]:
    """The program's conv, linear and pool ops in graph order, with the innermost module of their
    `nn_module_stack` and their input and weight shapes."""
    found = []
    for node in graph.nodes:
        family = op_family(str(node.target)) if node.op == "call_function" else None
        if family is None or not node.args:
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        activation = _node_shape(node.args[0]) or ()
        weight = _node_shape(node.args[1]) if family in WEIGHTED_FAMILIES and len(node.args) > 1 else None
        found.append(
            ProgramLayer(
                family=family,
                layer=str(stack[-1][0]) if stack else "",
                activation=activation[1:],
                weight=None
                if weight is None or None in weight
                else tuple(int(size) for size in weight if size is not None),
            )
        )
    return found


def _fits(event: OpEvent, candidate: ProgramLayer) -> bool:
    """Same input shape (batch aside) and, for a weighted op, an input of the weight's shape, or of its
    first two dimensions swapped (a prepacked transposed conv or linear weight)."""
    if not event.shapes or len(event.shapes[0]) != len(candidate.activation) + 1:
        return False
    if any(want is not None and want != got for want, got in zip(candidate.activation, event.shapes[0][1:])):
        return False
    weight = candidate.weight
    if candidate.family not in WEIGHTED_FAMILIES:
        return True
    if weight is None or len(weight) < 2:
        return False
    swapped = (weight[1], weight[0], *weight[2:])
    return any(shape in (weight, swapped) for shape in event.shapes[1:])


def layers_by_shapes(events: Sequence[OpEvent], candidates: Sequence[ProgramLayer]) -> tuple[list[str], int]:
    """Each event's layer: the first program op of its kind, not yet taken in this call, whose shapes it
    fits (so identical layers are told apart by order); "" for fused kernels and other ops. Also how
    many conv, linear or pool ops found no program op."""
    layers: list[str] = []
    taken: set[int] = set()
    unmatched, call = 0, None
    for event in events:
        if event.call != call:
            taken, call = set(), event.call
        family = op_family(event.name)
        hit = None
        if family is not None:
            hit = next(
                (
                    i
                    for i, candidate in enumerate(candidates)
                    if i not in taken and candidate.family == family and _fits(event, candidate)
                ),
                None,
            )
            unmatched += hit is None
        if hit is not None:
            taken.add(hit)
        layers.append("" if hit is None else candidates[hit].layer)
    return layers, unmatched
