"""Indexes over one ONNX graph, from ONNX Runtime's own `ONNXModel`: who produces and who reads each
tensor, and the value of each constant (initializer or Constant node).

Built once per graph and shared by the coverage rules, the TensorRT graph checks and the Grad-CAM
graph cut, instead of each walking `graph.node` with its own dictionaries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def load_model(model_or_path: str | Path | Any) -> Any:
    """An `onnx.ModelProto` from a path (external data read in) or the proto itself."""
    import onnx

    return model_or_path if isinstance(model_or_path, onnx.ModelProto) else onnx.load(str(model_or_path))


class GraphIndex:
    """Producer, consumers and constants of a graph's tensors (the graph is not changed)."""

    def __init__(self, model: Any) -> None:
        from onnxruntime.quantization.onnx_model import ONNXModel

        self.model = model
        self.graph = model.graph
        self._onnx_model = ONNXModel(model)
        self.consumers: dict[str, list[Any]] = self._onnx_model.input_name_to_nodes()
        self.producer: dict[str, Any] = self._onnx_model.output_name_to_node()
        self.initializers = {t.name: t for t in self.graph.initializer}
        self._constants: dict[str, np.ndarray | None] = {}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output; None for a computed tensor."""
        if name not in self._constants:
            node = self.producer.get(name)
            if name in self.initializers or (node is not None and node.op_type == "Constant"):
                self._constants[name] = self._onnx_model.get_constant_value(name)
            else:
                self._constants[name] = None
        return self._constants[name]

    def constants(self) -> dict[str, np.ndarray]:
        """Every constant of the graph by name: initializers and Constant nodes' outputs."""
        names = [*self.initializers, *(n.output[0] for n in self.graph.node if n.op_type == "Constant" and n.output)]
        return {name: value for name in names if (value := self.constant(name)) is not None}

    def is_constant(self, name: str) -> bool:
        return self.constant(name) is not None

    def readers(self, name: str) -> list[Any]:
        return self.consumers.get(name, [])

    @property
    def inputs(self) -> list[str]:
        """The graph's real inputs (initializers listed as inputs by old exporters left out)."""
        return [i.name for i in self.graph.input if i.name not in self.initializers]

    def attribute(self, node: Any, name: str, default: Any = None) -> Any:
        from onnx import helper

        for attr in node.attribute:
            if attr.name == name:
                return helper.get_attribute_value(attr)
        return default


def describe(node: Any) -> str:
    """`OpType 'name'` of a node, for messages."""
    return f"{node.op_type} '{node.name or node.output[0]}'"
