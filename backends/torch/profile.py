"""torch.profiler for the torch sessions (`Session.profile` of torch-eager, torch-fx-int8 and
torchao-pt2e-int8): one profiled pass, its outermost operators, and a way per runtime to find their layer.

Why only the outermost operators: torch records every dispatcher call, and operators call operators
(aten::conv2d -> aten::convolution -> aten::mkldnn_convolution), so summing every event would count the
same microseconds several times. An operator with no operator among its ancestors is what the runtime
scheduled; its inclusive time covers its callees and no two of them overlap on the calling thread, so
their sum is what the calls spent in operators (on CUDA: the time of the kernels each one launched).
Ranges that are not operators (record_function ranges, ours and Inductor's "## Call CompiledFxGraph ##",
the TorchScript `forward`, Dynamo's "Torch-Compiled Region") are looked through, never counted.

Layers: in eager (`layer_ranges`), forward hooks on every module open a `layer::<path>` range around it,
and an operator belongs to the innermost range it runs in. The compiled runtimes keep no module to hook:
their lookups are in `backends.torch.profile_layers`.

torch is imported inside the functions: the measure package is imported by processes that never profile.
"""

from __future__ import annotations

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
    from torch import nn

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


def op_family(name: str) -> str | None:
    """conv_transpose, conv, linear, max_pool or avg_pool for an op of those kinds; None otherwise
    (Inductor's fused kernels included: they are not one model op)."""
    if _KERNEL.match(name) and not _NAMESPACED.match(name):
        return None
    lowered = name.lower()
    return next((family for family, pattern in _FAMILIES if pattern.search(lowered)), None)
