"""Multiply-accumulates and memory traffic per image, counted from a model's ONNX graph (no runtime).

Counted exactly, from the shapes `onnx.shape_inference` gives (the image input's symbolic batch taken as
1, and every count divided by that batch), for the four op types that hold nearly all of a segmentation
network's arithmetic:

- Conv: MACs = N * Cout * Hout * Wout * (Cin / groups) * kH * kW, i.e. the output's elements times the
  weight's elements per output channel (`W[1:]`: groups and dilation are in the shapes already);
- ConvTranspose: MACs = N * Cin * Hin * Win * (Cout / groups) * kH * kW (every input element is
  multiplied into a kH x kW patch of each of its group's output channels);
- MatMul: the output's elements times the inner dimension K (broadcast batch dimensions included);
- Gemm: M * N * K (transA / transB read for K); the bias and the scaling by alpha and beta are not MACs.

Traffic: the elements of the constant tensors those nodes read (weights and biases: initializers, or
tensors computed from initializers only, such as a transposed weight), read once per batch, and the
elements of the activations they read and write (their other inputs and their outputs), per image. A
runtime that fuses a Relu into the Conv before it moves the same tensors; one that keeps activations in
cache moves fewer, so the bytes are what the counted ops would move with no cache at all. Nothing else is
counted: every other op type (BatchNormalization, Relu, Add, Resize, MaxPool, ...) is listed with its
number of nodes, so a reader sees what share of the graph the count leaves out.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.onnx.names import INPUT_NAME, OUTPUT_NAME

if TYPE_CHECKING:
    import onnx
    from torch import nn

COUNTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass(frozen=True)
class GraphCount:
    """What one model's graph costs per image: its MACs, the traffic of the counted ops, and what was not
    counted (`uncounted`: every other op type and its number of nodes, most first)."""

    macs: int  # per image
    weight_elements: int  # constant tensors the counted ops read, once per batch
    activation_elements: int  # per image: the counted ops' other inputs and their outputs
    nodes: int
    counted_nodes: int
    uncounted: tuple[tuple[str, int], ...] = ()
    unknown_shapes: int = 0  # nodes of a counted type whose shapes inference could not give (left out)
    source: str = ""  # where the graph came from

    @property
    def gmac_per_image(self) -> float:
        return self.macs / 1e9

    @property
    def uncounted_nodes_pct(self) -> float:
        """The share of the graph's nodes whose arithmetic is not in `macs`."""
        return 100.0 * (self.nodes - self.counted_nodes) / self.nodes if self.nodes else 0.0

    def bytes_per_image(self, batch_size: int, element_bytes: int) -> float:
        """The counted ops' traffic per image at `batch_size` (the weights shared by the batch), every
        tensor taken at `element_bytes` bytes an element."""
        return (self.weight_elements / max(batch_size, 1) + self.activation_elements) * element_bytes

    def uncounted_text(self, top: int = 4) -> str:
        """ "Relu 31%, BatchNormalization 29%, Add 6%, MaxPool 3%, +2 types": each op type's share of the
        graph's nodes, most first; then counted-type nodes left out for an unknown shape, if any."""
        parts = [f"{op} {100.0 * n / self.nodes:.0f}%" for op, n in self.uncounted[:top]] if self.nodes else []
        if len(self.uncounted) > top:
            parts.append(f"+{len(self.uncounted) - top} types")
        if self.unknown_shapes:
            parts.append(f"{self.unknown_shapes} Conv/MatMul-type node(s) of unknown shape")
        return ", ".join(parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GraphCount:
        data = json.loads(text)
        data["uncounted"] = tuple((str(op), int(n)) for op, n in data.get("uncounted", ()))
        return cls(**data)


def _dims(value_info: Any) -> list[int] | None:
    """A tensor's shape, None where it or any of its dimensions is unknown or symbolic."""
    if not value_info.type.HasField("tensor_type") or not value_info.type.tensor_type.HasField("shape"):
        return None
    dims = value_info.type.tensor_type.shape.dim
    return [int(d.dim_value) for d in dims] if all(d.HasField("dim_value") for d in dims) else None


def _fixed_batch(model: onnx.ModelProto) -> int:
    """Sets a symbolic leading dimension of the graph's inputs to 1 (in place) and returns the batch the
    graph is counted at: the first input's (the image's) leading dimension, 1 where it was symbolic."""
    initializers = {i.name for i in model.graph.initializer}
    batches = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers or not graph_input.type.tensor_type.shape.dim:
            continue
        first = graph_input.type.tensor_type.shape.dim[0]
        if not (first.HasField("dim_value") and first.dim_value > 0):
            first.Clear()
            first.dim_value = 1
        batches.append(int(first.dim_value))
    return batches[0] if batches else 1


def _prepared(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy with local functions inlined, a symbolic batch set to 1 and every shape inferred afresh."""
    import onnx
    from onnx import inliner, shape_inference

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if copy.functions:
        copy = inliner.inline_local_functions(copy)
    batch = _fixed_batch(copy)
    del copy.graph.value_info[:]  # shapes recorded with a symbolic batch would disagree with batch 1
    return shape_inference.infer_shapes(copy, data_prop=True), batch


def _attribute(node: Any, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _node_macs(node: Any, shapes: dict[str, list[int]]) -> int | None:
    """The node's MACs at the graph's batch; None where a shape it needs is unknown."""
    inputs = [shapes.get(name) for name in node.input[:2]]
    out = shapes.get(node.output[0]) if node.output else None
    if len(inputs) < 2 or inputs[0] is None or inputs[1] is None:
        return None
    x, w = inputs[0], inputs[1]
    if node.op_type == "Conv":
        return None if out is None else math.prod(out) * math.prod(w[1:])
    if node.op_type == "ConvTranspose":
        return math.prod(x) * math.prod(w[1:])
    if out is None:
        return None
    if node.op_type == "MatMul":
        return math.prod(out) * x[-1]
    if node.op_type == "Gemm":
        return math.prod(out) * (x[0] if _attribute(node, "transA") else x[-1])
    return None


def _constants(graph: Any) -> set[str]:
    """Tensors known before the input arrives: initializers, Constant outputs, and outputs of nodes whose
    inputs are all constant (a weight transposed or cast in the graph is still a weight)."""
    constant = {i.name for i in graph.initializer}
    for node in graph.node:  # topological order
        if node.op_type == "Constant" or (node.input and all(not n or n in constant for n in node.input)):
            constant.update(node.output)
    return constant


def count_model(model: onnx.ModelProto, source: str = "") -> GraphCount:
    """MACs and traffic per image of the main graph's Conv, ConvTranspose, MatMul and Gemm nodes."""
    inferred, batch = _prepared(model)
    graph = inferred.graph
    shapes = {i.name: [int(d) for d in i.dims] for i in graph.initializer}
    for value_info in (*graph.input, *graph.value_info, *graph.output):
        if (dims := _dims(value_info)) is not None:
            shapes.setdefault(value_info.name, dims)
    constant = _constants(graph)
    macs = activations = counted = unknown = 0
    weights: set[str] = set()
    others: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type not in COUNTED_OPS:
            others[node.op_type] += 1
            continue
        found = _node_macs(node, shapes)
        if found is None:
            unknown += 1
            continue
        counted += 1
        macs += found
        for name in node.input:
            if not name:
                continue
            if name in constant:
                weights.add(name)
            else:
                activations += math.prod(shapes.get(name, [0]))
        activations += sum(math.prod(shapes.get(name, [0])) for name in node.output[:1])
    return GraphCount(
        macs=macs // batch,
        weight_elements=sum(math.prod(shapes.get(name, [0])) for name in weights),
        activation_elements=activations // batch,
        nodes=len(graph.node),
        counted_nodes=counted,
        uncounted=tuple(sorted(others.items(), key=lambda item: (-item[1], item[0]))),
        unknown_shapes=unknown,
        source=source,
    )


def count_file(path: Path, source: str = "") -> GraphCount:
    import onnx

    return count_model(onnx.load(str(path)), source or path.name)


EXPORT_SOURCE = "torch.onnx.export (dynamo), batch 1"


def export_for_count(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> Path:
    """The float model exported at batch 1 with fixed shapes (the dynamo exporter the ONNX backends use,
    without their dynamic batch), only to be counted; returns `path`."""
    import logging

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, *input_shape),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamo=True,
            external_data=False,
        )
    return path
