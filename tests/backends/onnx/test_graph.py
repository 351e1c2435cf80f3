"""The graph index on a hand-made ONNX graph: who produces and who reads each tensor, constants from
initializers and Constant nodes (not computed tensors), the real inputs (not initializers an old exporter
also listed as inputs), node attributes with their defaults, and a node's name for messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.onnx.graph import GraphIndex, describe, load_model

W = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
C = np.array([0.5, -0.5], np.float32)


def _model() -> onnx.ModelProto:
    """x @ w + c -> LeakyRelu(alpha 0.2) -> out; `w` is an initializer listed as an input too."""
    nodes = [
        helper.make_node("Constant", [], ["c"], name="bias", value=numpy_helper.from_array(C)),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul"),
        helper.make_node("Add", ["y", "c"], ["z"], name="add"),
        helper.make_node("LeakyRelu", ["z"], ["out"], alpha=0.2),  # no name: described by its output
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2])],
        initializer=[numpy_helper.from_array(W, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_producers_readers_and_the_real_inputs():
    index = GraphIndex(_model())
    assert index.inputs == ["x"]  # `w` is an initializer, whatever the input list says
    assert index.producer["z"].name == "add" and "x" not in index.producer
    assert [n.name for n in index.readers("y")] == ["add"] and index.readers("out") == []
    assert [n.name for n in index.readers("x")] == ["matmul"]


def test_constants_are_initializers_and_constant_nodes_never_computed_tensors():
    index = GraphIndex(_model())
    assert (index.constant("w") == W).all() and (index.constant("c") == C).all()
    assert index.constant("y") is None and index.constant("x") is None and not index.is_constant("z")
    assert index.is_constant("c")
    assert sorted(index.constants()) == ["c", "w"]


def test_attributes_with_defaults_and_nodes_described_for_messages():
    index = GraphIndex(_model())
    relu = index.producer["out"]
    assert index.attribute(relu, "alpha") == pytest.approx(0.2)
    assert index.attribute(relu, "beta", 7) == 7 and index.attribute(relu, "beta") is None
    assert describe(index.producer["z"]) == "Add 'add'"
    assert describe(relu) == "LeakyRelu 'out'"


def test_a_model_is_loaded_from_a_path_or_taken_as_it_is(tmp_path: Path):
    model = _model()
    assert load_model(model) is model
    onnx.save(model, tmp_path / "toy.onnx")
    for path in (tmp_path / "toy.onnx", str(tmp_path / "toy.onnx")):
        assert load_model(path).graph.node[1].name == "matmul"
