"""Cut a converted FX int8 GraphModule at the Grad-CAM feature layer, so finite differences run its own head.

Finding the layer's output: in the observed graph (prepare_fx) every node keeps its module path, so the
output is the last node inside the layer's path (after fusion, `decoder.3`'s is the ConvReLU2d
`decoder.3.2`). convert_fx drops the metadata of ops it fuses (a residual add + ReLU becomes one
`add_relu`, and a ReLU module that was the layer is gone), so in the converted graph the output is the
first node downstream of the modules feeding it that carries the quantization parameters the observer
after the layer chose (`OutputMark`, read before conversion rewrites the observed graph in place).

The cut: that node's value is a quantized tensor; its integer codes (`int_repr()`) are shifted channel
by channel by a whole number of quantization steps, clipped to the code range, and rewrapped with the
same scale and zero point; a token layer's (1, N, C) codes are shifted on their spatial grid
(bench/gradcam/tokens.py). The rest of the graph (the head) runs in `torch.fx.Interpreter` with every
value it reads from outside pre-filled from one recorded forward pass, activations repeated along the
batch. A layer whose output stays float has no codes to shift: `SplitUnavailable`, which the backend
turns into a note.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx

from bench.errors import UsageError
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import SplitUnavailable
from bench.gradcam.tokens import spatial


def _paths(node: fx.Node) -> list[str]:
    """Module paths a node belongs to: its call_module target and its recorded module stack."""
    found = [str(node.target)] if node.op == "call_module" else []
    for value in (node.meta.get("nn_module_stack") or {}).values():
        path = value[0] if isinstance(value, tuple) else value
        if isinstance(path, str):
            found.append(path)
    return found


def _inside(graph: fx.Graph, layer: str) -> list[fx.Node]:
    return [n for n in graph.nodes if any(p == layer or p.startswith(layer + ".") for p in _paths(n))]


def layer_node(graph_module: fx.GraphModule, layer: str) -> fx.Node:
    """The last node whose module path lies inside the layer: its output in a graph that kept every
    node's module metadata (a traced or observed graph). In a converted graph it is only an anchor:
    convert_fx drops the metadata of the ops it fuses (a residual add + ReLU -> `add_relu`)."""
    inside = _inside(graph_module.graph, layer)
    if not inside:
        modules = sorted({p for n in graph_module.graph.nodes for p in _paths(n)})
        shown = ", ".join(modules[-8:]) + (", ..." if len(modules) > 8 else "")
        raise SplitUnavailable(
            f"layer '{layer}' is not in the converted FX graph (fused away?); modules in it include: {shown}"
        )
    return inside[-1]


@dataclass(frozen=True)
class OutputMark:
    """Where a layer's output is, read from the observed graph (before `convert_fx` rewrites it in place).

    `node` is the layer's output there (the last node inside its module path, metadata intact);
    `qparams` the (scale, zero point) its observer chose, None when no observer follows it; `graph` the
    observed graph as node -> (module path of a non-observer call_module or None, input node names), to
    walk back from `node` to modules that survive conversion."""

    node: str
    qparams: tuple[float, int] | None
    graph: dict[str, tuple[str | None, tuple[str, ...]]]


def _is_observer(module: Any) -> bool:
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase
    from torch.ao.quantization.observer import ObserverBase

    return isinstance(module, (ObserverBase, FakeQuantizeBase))


def output_mark(prepared: fx.GraphModule, layer: str) -> OutputMark | None:
    """The layer's `OutputMark` in an observed (prepare_fx) graph; None when the layer is not there."""
    inside = _inside(prepared.graph, layer)
    if not inside:
        return None
    output = inside[-1]
    qparams = None
    for user in output.users:
        module = prepared.get_submodule(str(user.target)) if user.op == "call_module" else None
        if module is not None and _is_observer(module):
            scale, zero_point = module.calculate_qparams()
            if scale.numel() == 1:
                qparams = (float(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0]))
    graph: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for node in prepared.graph.nodes:
        module = prepared.get_submodule(str(node.target)) if node.op == "call_module" else None
        path = str(node.target) if module is not None and not _is_observer(module) else None
        graph[node.name] = (path, tuple(a.name for a in node.all_input_nodes))
    return OutputMark(output.name, qparams, graph)


def _anchor_paths(mark: OutputMark, present: set[str]) -> set[str]:
    """Module paths nearest to the marked output, walking back through the observed graph, that the
    converted graph still calls (a ReLU fused into `add_relu` is gone; the convs feeding the add stay)."""
    found: set[str] = set()
    stack, seen = [mark.node], set()
    while stack:
        name = stack.pop()
        if name in seen or name not in mark.graph:
            continue
        seen.add(name)
        path, inputs = mark.graph[name]
        if path is not None and path in present:
            found.add(path)
        else:
            stack.extend(inputs)
    return found


def _output_node(
    graph_module: fx.GraphModule, layer: str, values: dict[fx.Node, Any], mark: OutputMark | None
) -> fx.Node:
    """The converted graph's node carrying the layer's output. With a mark: the first node that depends
    on every anchor module and holds a tensor quantized with the observer's parameters (the anchor itself
    when nothing was fused after it). Without one: the last node inside the layer's module path."""
    if mark is None:
        return layer_node(graph_module, layer)
    graph = graph_module.graph
    calls = {str(n.target): n for n in graph.nodes if n.op == "call_module"}
    anchors = [calls[path] for path in sorted(_anchor_paths(mark, set(calls)))]
    if not anchors:
        raise SplitUnavailable(f"no module of the converted FX graph leads to layer '{layer}''s output")
    own = mark.graph[mark.node][0]
    if mark.qparams is None:
        if own in calls:
            return calls[own]
        raise SplitUnavailable(f"layer '{layer}''s output has no observer of its own in the FX graph")
    scale, zero_point = mark.qparams
    reach = {anchor: {anchor} for anchor in anchors}
    for node in graph.nodes:  # topological order: descendants of each anchor
        for anchor, below in reach.items():
            if node is not anchor and any(a in below for a in node.all_input_nodes):
                below.add(node)
    for node in graph.nodes:
        if not all(node in below for below in reach.values()):
            continue
        value = values.get(node)
        if (
            isinstance(value, torch.Tensor)
            and value.is_quantized
            and value.ndim in (3, 4)  # a feature map, or tokens
            and value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric)
            and abs(value.q_scale() - scale) <= 1e-6 * scale
            and value.q_zero_point() == zero_point
        ):
            return node
    raise SplitUnavailable(
        f"no quantized tensor after {', '.join(a.name for a in anchors)} carries layer "
        f"'{layer}''s output quantization (scale {scale:.4g}, zero point {zero_point})"
    )


@contextmanager
def quiet_cat_warning() -> Iterator[None]:
    """The deployed graph concatenates int8 tensors with different scales (it warns on every pass);
    that is its own arithmetic, measured by the accuracy metrics, not something to repeat K+1 times."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All inputs of this cat operator must share", category=UserWarning)
        yield


def _batch_dependent(graph: fx.Graph) -> set[fx.Node]:
    found: set[fx.Node] = set()
    for node in graph.nodes:  # topological order
        if node.op == "placeholder" or any(a in found for a in node.all_input_nodes):
            found.add(node)
    return found


def _repeat(value: torch.Tensor, times: int) -> torch.Tensor:
    """`value` (batch 1) repeated `times` along the batch; quantized tensors keep their parameters."""
    if not value.is_quantized:
        return value.expand(times, *value.shape[1:]).contiguous()
    return _requantized(value, value.int_repr().expand(times, *value.shape[1:]).contiguous())


def _requantized(like: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Integer `codes` as a quantized tensor with `like`'s scale(s) and zero point(s)."""
    if like.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return torch._make_per_tensor_quantized_tensor(codes, like.q_scale(), like.q_zero_point())
    return torch._make_per_channel_quantized_tensor(
        codes, like.q_per_channel_scales(), like.q_per_channel_zero_points(), like.q_per_channel_axis()
    )


def _code_range(value: torch.Tensor) -> tuple[int, int]:
    info = torch.iinfo(value.int_repr().dtype)
    return int(info.min), int(info.max)


def _channel_scales(value: torch.Tensor) -> np.ndarray:
    """(K,) scale per channel of a (1, K, h, w) quantized tensor, or of (1, N, K) tokens."""
    channels = value.shape[-1] if value.ndim == 3 else value.shape[1]
    if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return np.full(channels, float(value.q_scale()))
    if value.ndim == 3:
        raise SplitUnavailable("the feature tokens are quantized per channel along the token axis, not per tensor")
    if value.q_per_channel_axis() != 1:
        raise SplitUnavailable(
            f"the feature tensor is quantized along axis {value.q_per_channel_axis()}, not per channel"
        )
    return value.q_per_channel_scales().double().numpy()


def grid_codes(value: Any, image: torch.Tensor, layer: str, node: fx.Node) -> tuple[torch.Tensor, Any]:
    """A cut node's value as a feature map (1, K, h, w) (tokens (1, N, C) seen on their grid, inferred
    from the image's size: bench/gradcam/tokens.py), and the function that puts a batch of such maps back
    into the node's own layout for the head."""
    if not isinstance(value, torch.Tensor) or value.ndim not in (3, 4):
        raise SplitUnavailable(
            f"layer '{layer}' ({node.name}) does not output one (1, K, h, w) feature map or (1, N, C) tokens"
        )
    try:
        return spatial(value, (int(image.shape[-2]), int(image.shape[-1])), layer)
    except UsageError as exc:
        raise SplitUnavailable(str(exc)) from exc


class Recorder(fx.Interpreter):
    """Runs the graph once and keeps every node's value."""

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, node: fx.Node) -> Any:
        value = super().run_node(node)
        self.values[node] = value
        return value


def fx_feature_split(
    graph_module: fx.GraphModule,
    image: np.ndarray | torch.Tensor,
    layer: str,
    steps: int = 4,
    mark: OutputMark | None = None,
) -> FeatureSplit:
    """One image's forward pass of a converted FX int8 graph cut at `layer`'s quantized output.

    `mark` (`output_mark` of the observed graph) locates the output where convert_fx fused ops after
    the layer's last module and dropped their metadata (a residual block's add + ReLU); without it the
    last node with the layer's module path is taken."""
    if int(steps) != steps or steps < 1:
        raise SplitUnavailable(
            f"the finite-difference step must be a positive whole number of quantization steps, got {steps}"
        )
    x = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32)) if isinstance(image, np.ndarray) else image
    if x.ndim != 4 or x.shape[0] != 1:
        raise SplitUnavailable(f"fx_feature_split takes one image (1, C, H, W), got shape {tuple(x.shape)}")
    if mark is None:
        layer_node(graph_module, layer)  # an unknown layer fails before the forward pass
    recorder = Recorder(graph_module)
    with torch.no_grad(), quiet_cat_warning():
        full = recorder.run(x)
    values = recorder.values
    cut = _output_node(graph_module, layer, values, mark)
    feature = values[cut]
    if not isinstance(feature, torch.Tensor) or feature.ndim not in (3, 4):
        raise SplitUnavailable(
            f"layer '{layer}' ({cut.name}) does not output one (1, K, h, w) feature map or (1, N, C) tokens"
        )
    if not feature.is_quantized:
        raise SplitUnavailable(
            f"layer '{layer}' ({cut.name}) outputs a float tensor in the int8 graph, so there are no codes to shift"
        )
    head = FxHead(graph_module, cut, values)
    all_codes, layout = grid_codes(feature.int_repr(), x, layer, cut)
    codes = all_codes[0]  # (K, h, w)
    low, high = _code_range(feature)
    moved = (codes.to(torch.int64) + int(steps)).clamp(low, high).to(codes.dtype)
    clipped = float((moved.to(torch.int64) - codes.to(torch.int64) != int(steps)).double().mean())
    scales = _channel_scales(feature)

    def head_shifted(channels: np.ndarray) -> np.ndarray:
        return head.run(_requantized(feature, layout(shift_rows(codes, moved, channels))))

    reference = first_output(full)
    check_reproduces(head_shifted, reference, f"the FX head cut at '{layer}'")
    kind = f"{str(feature.dtype).removeprefix('torch.')} codes of {cut.name}, shift {int(steps)} steps"
    return FeatureSplit(
        features=grid_codes(feature.dequantize(), x, layer, cut)[0][0].numpy(),
        step=int(steps) * scales,
        head_shifted=head_shifted,
        meta={
            "kind": kind,
            "node": cut.name,
            "clipped": clipped,
            "codes": codes.numpy(),
            "shifted_codes": moved.numpy(),
            "logits": reference,
        },
    )


class FxHead:
    """The part of an FX graph downstream of one node (the head), run for a batch of that node's values.

    Everything the head reads from outside is pre-filled from one recorded batch-1 pass (`values`),
    activations repeated along the batch; batch-dependent shape arithmetic it reads is recomputed. The
    output is the graph's first output as float numpy (an exported program returns a tuple)."""

    def __init__(self, graph_module: fx.GraphModule, cut: fx.Node, values: dict[fx.Node, Any]) -> None:
        graph = graph_module.graph
        self.module, self.cut = graph_module, cut
        head = _head(graph, cut, values)
        self.batch = _batch_dependent(graph)
        self.read = {a for n in head for a in n.all_input_nodes if a not in head and a is not cut}
        self.fixed = {
            n: values.get(n) if n in self.read else None for n in graph.nodes if n not in head and n is not cut
        }

    def run(self, cut_batch: Any) -> np.ndarray:
        rows = int(cut_batch.shape[0])
        env: dict[fx.Node, Any] = {}
        for node, value in self.fixed.items():
            repeat = (
                node in self.read
                and node in self.batch
                and isinstance(value, torch.Tensor)
                and value.ndim >= 1
                and value.shape[0] == 1
            )
            env[node] = _repeat(value, rows) if repeat else value
        env[self.cut] = cut_batch
        with torch.no_grad(), quiet_cat_warning():
            out = fx.Interpreter(self.module).run(torch.empty(0), initial_env=env)
        return first_output(out)


def shift_rows(codes: torch.Tensor, moved: torch.Tensor, channels: np.ndarray) -> torch.Tensor:
    """A batch of `codes` (K, h, w), one row per entry of `channels`: row r has channel k = channels[r]
    replaced by `moved[k]` (its shifted codes); -1 leaves the row unshifted."""
    rows = np.asarray(channels, dtype=np.int64)
    shifted = codes.expand(len(rows), *codes.shape).clone()
    for r, k in enumerate(rows):
        if k >= 0:
            shifted[r, k] = moved[k]
    return shifted


def check_reproduces(head_shifted: Any, reference: np.ndarray, what: str) -> None:
    """The unshifted head must give the graph's own logits bit for bit, or its maps explain other arithmetic."""
    unshifted = head_shifted(np.array([-1]))
    if not np.array_equal(unshifted, reference):
        diff = float(np.max(np.abs(unshifted.astype(np.float64) - reference)))
        raise SplitUnavailable(
            f"{what} does not reproduce the graph's logits exactly (max |diff| {diff:.3g}); "
            f"its maps would explain other arithmetic"
        )


def first_output(out: Any) -> np.ndarray:
    """The logits of a graph's output: a tensor, or the first of a tuple/list (exported programs)."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out.float().detach().numpy()


def _head(graph: fx.Graph, cut: fx.Node, values: dict[fx.Node, Any]) -> set[fx.Node]:
    """Nodes downstream of the cut, plus the batch-dependent non-tensor work they read (sizes, shapes),
    which must be recomputed for the batched head instead of reused from the batch-1 pass."""
    head: set[fx.Node] = set()
    for node in graph.nodes:  # topological order
        if any(a is cut or a in head for a in node.all_input_nodes):
            head.add(node)
    batch = _batch_dependent(graph)
    changed = True
    while changed:
        changed = False
        for node in list(head):
            for source in node.all_input_nodes:
                if source is cut or source in head or source not in batch or source.op == "placeholder":
                    continue
                value = values.get(source)
                if not (isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == 1):
                    head.add(source)
                    changed = True
    return head
