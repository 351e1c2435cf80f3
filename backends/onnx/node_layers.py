"""Which model layer each node of an ONNX graph implements, for the runtimes that name their kernels after
the nodes of the graph they were given (ONNX Runtime's profiler, OpenVINO's PERF_COUNT, TensorRT's layers).

A node is named by its weight the way `backends.onnx.layers.weighted_nodes` names a layer (the weight
initializer minus ".weight", else the node's name). A weight is followed back through a DequantizeLinear
and its `_quantized` suffix (QDQ graphs); an activation right after a weighted node, Q/DQ between them or
not, takes that node's layer; a node without weights in a graph from segbench's (dynamo) export is named by
the innermost module it was made in (`pkg.torch.onnx.name_scopes`); any other node takes the layer of the
nodes whose outputs it reads, when they all have the same one; else it has no layer ("").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.onnx.export import node_scopes
from backends.onnx.graph import GraphIndex, load_model
from backends.onnx.layers import ACTIVATIONS, WEIGHTED_OPS

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
QUANTIZED_SUFFIX = "_quantized"  # quantize_static's name for an int8 initializer


def _initializer(index: GraphIndex, tensor: str) -> Any | None:
    """The initializer behind a node input: itself, or the one a DequantizeLinear reads (a QDQ weight)."""
    if tensor in index.initializers:
        return index.initializers[tensor]
    producer = index.producer.get(tensor)
    if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in index.initializers:
        return index.initializers[producer.input[0]]
    return None


def parameter_name(index: GraphIndex, tensor: str) -> str | None:
    """The name of the initializer behind a node input without the `_quantized` suffix; None for a
    computed tensor."""
    init = _initializer(index, tensor)
    return None if init is None else str(init.name).removesuffix(QUANTIZED_SUFFIX)


def weight_layers(index: GraphIndex) -> dict[str, str]:
    """Weight and bias parameter -> layer, for the weighted nodes of the original graph, named as
    `weighted_nodes` names them (weight minus ".weight", else the node's name)."""
    found: dict[str, str] = {}
    for node in index.graph.node:
        weight = parameter_name(index, node.input[1]) if node.op_type in WEIGHTED_OPS and len(node.input) > 1 else None
        if weight is None:
            continue
        layer = weight.removesuffix(".weight") if weight.endswith(".weight") else node.name
        found[weight] = layer
        bias = parameter_name(index, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if bias is not None:
            found.setdefault(bias, layer)
    return found


def _constant(index: GraphIndex, tensor: str) -> bool:
    """An initializer, a Constant's output, or a DequantizeLinear of constants (a QDQ graph's weights)."""
    producer = index.producer.get(tensor)
    if tensor in index.initializers:
        return True
    if producer is None or producer.op_type not in ("Constant", "DequantizeLinear"):
        return False
    return all(_constant(index, name) for name in producer.input if name)


def _reads_weights(index: GraphIndex, node: Any) -> bool:
    """Whether a node reads a constant tensor of two or more dimensions (a weight, not a scale, zero
    point or bias): such a node is a layer of its own and never takes the layer of what it reads."""
    return any(
        (init := _initializer(index, tensor)) is not None and len(init.dims) >= 2 for tensor in node.input if tensor
    )


def graph_layers(index: GraphIndex, params: dict[str, str], by_name: Callable[[Any], str]) -> dict[str, str]:
    """Node name -> layer for every node of `index`'s graph: its parameters, else `by_name`, else (a node
    without weights) the one layer of the nodes whose outputs it reads."""
    found: dict[str, str] = {}
    for node in index.graph.node:
        layer = next((params[p] for t in node.input if t and (p := parameter_name(index, t)) in params), "")
        layer = layer or by_name(node)
        if not layer and not _reads_weights(index, node):
            layer = _read_layer(index, node, found)
        if layer:
            found[node.name] = layer
    return found


def _read_layer(index: GraphIndex, node: Any, found: dict[str, str]) -> str:
    producers = [index.producer.get(t) for t in node.input if t and not _constant(index, t)]
    layers = {found.get(p.name, "") if p is not None else "" for p in producers}
    return layers.pop() if len(layers) == 1 else ""


def original_layers(index: GraphIndex, params: dict[str, str]) -> dict[str, str]:
    """Node name -> layer in the original graph; an activation fused after a weighted node (named after
    the activation in ORT's fused graph) takes that node's layer."""

    def activation(node: Any) -> str:
        producer = index.producer.get(node.input[0]) if node.op_type in ACTIVATIONS and node.input else None
        while producer is not None and producer.op_type in QDQ_OPS:  # a QDQ graph's pair between them
            producer = index.producer.get(producer.input[0])
        if producer is None or producer.op_type not in WEIGHTED_OPS:
            return ""
        return next((params[p] for t in producer.input if t and (p := parameter_name(index, t)) in params), "")

    def innermost_module(node: Any) -> str:
        scopes = node_scopes(node)
        return scopes[-1] if scopes else ""

    return graph_layers(index, params, lambda node: activation(node) or innermost_module(node))


def onnx_node_layers(model_path: Path, module_prefix: str = "") -> dict[str, str]:
    """Node name -> layer for every node of an ONNX graph that has one (weighted nodes, the activations
    fused after them, and what reads them alone), for a runtime that names its kernels after the nodes of
    the graph it was given (TensorRT). `module_prefix` is taken off layer names (a wrapper's attribute)."""
    index = GraphIndex(load_model(model_path))
    found = original_layers(index, weight_layers(index))
    return {node: layer.removeprefix(module_prefix) for node, layer in found.items()}
