"""The layers of an ONNX graph that static quantization gives int8 weights, named by module path.

The dynamo exporter names a Conv's weight initializer after the parameter (`backbone.layer1.0.conv1.weight`,
BatchNorm already folded in), and `quant_pre_process` keeps node names, so a module path maps to the
node that `nodes_to_exclude` takes; a graph whose weights carry other names (a user's own file) is named
by its node names instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.onnx.graph import GraphIndex, load_model
from bench.backend import QuantLayer, check_float_layers

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu")  # fused with the op before them in a QDQ graph


def weighted_nodes(model_or_path: str | Path | Any) -> list[QuantLayer]:
    """Conv, ConvTranspose, Gemm and MatMul nodes with a constant weight, in graph order."""
    index = GraphIndex(load_model(model_or_path))
    layers = []
    for node in index.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and node.input[1] in index.initializers:
            weight = node.input[1]
            name = weight.removesuffix(".weight") if weight.endswith(".weight") else node.name
            layers.append(QuantLayer(name, node.op_type, node.name))
    return layers


def nodes_to_exclude(backend: str, model_or_path: str | Path | Any, names: tuple[str, ...]) -> list[str]:
    """Node names for `quantize_static(nodes_to_exclude=...)` from module paths (or node names)."""
    layers = weighted_nodes(model_or_path)
    check_float_layers(backend, names, layers)
    wanted = set(names)
    return [layer.node for layer in layers if layer.name in wanted or layer.node in wanted]


def layer_outputs(model_or_path: str | Path | Any) -> dict[str, str]:
    """Tensor -> layer: each weighted node's output, and the output of the activation fused after it
    (QDQ quantizes after the activation, so that is where the quantization error of the layer shows)."""
    index = GraphIndex(load_model(model_or_path))
    found: dict[str, str] = {}
    for layer in weighted_nodes(index.model):
        node = next(n for n in index.graph.node if n.name == layer.node)
        found[node.output[0]] = layer.name
        readers = index.consumers.get(node.output[0], [])
        if len(readers) == 1 and readers[0].op_type in ACTIVATIONS:
            found[readers[0].output[0]] = layer.name
    return found
