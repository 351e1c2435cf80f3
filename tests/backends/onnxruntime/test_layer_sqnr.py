"""qdq_loss_debug's SQNR per layer on a hand-made conv -> relu -> conv graph quantized by segbench's QDQ
preset: keyed by the layer each tensor belongs to, only for the tensors asked about, and a tensor the tool
cannot match (the first conv's output, fused with its relu) absent rather than zero."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.onnxruntime.layer_sqnr import onnx_layer_sqnr
from backends.onnxruntime.quantize import quantize_qdq

# quantizes (the project's rule for runtime tests): out of `make fast`
pytestmark = pytest.mark.integration

RNG = np.random.default_rng(0)
CALIBRATION = RNG.standard_normal((8, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the float graph quantization started from, its all-int8 QDQ graph)."""
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Conv", ["b", "w2"], ["logits"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    weights = {
        "w1": RNG.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "w2": RNG.standard_normal((2, 4, 3, 3)).astype(np.float32),
    }
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, 8, 8])],
        initializer=[numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    folder = tmp_path_factory.mktemp("sqnr")
    onnx.save(model, folder / "model.onnx")
    quantize_qdq(folder / "model.onnx", folder / "model.qdq.onnx", CALIBRATION, preprocessed_copy=folder / "pre.onnx")
    return folder / "pre.onnx", folder / "model.qdq.onnx"


def test_each_quantized_tensor_is_reported_under_its_layer(graphs: tuple[Path, Path]):
    layers = {"a": "conv1", "b": "relu", "logits": "conv2"}
    found = onnx_layer_sqnr(*graphs, CALIBRATION[:3], "input", layers)
    assert sorted(found) == ["conv2", "relu"]  # `a` is not quantized on its own: absent, not zero
    assert all(20.0 < db < 60.0 for db in found.values()), found  # 8-bit activations and weights


def test_only_the_tensors_asked_about_are_reported(graphs: tuple[Path, Path]):
    everything = onnx_layer_sqnr(*graphs, CALIBRATION[:3], "input", {"b": "relu", "logits": "conv2"})
    only = onnx_layer_sqnr(*graphs, CALIBRATION[:3], "input", {"logits": "head"})
    assert only == {"head": pytest.approx(everything["conv2"])}
    assert onnx_layer_sqnr(*graphs, CALIBRATION[:3], "input", {}) == {}
