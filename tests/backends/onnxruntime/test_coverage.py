"""Which nodes run in int8, by both rule sets: TensorRT's on the unfused Q/DQ graph, ONNX Runtime's on
the graph it optimizes."""

import onnx
import pytest

from backends.onnxruntime.coverage import explicit_qdq_coverage, fused_coverage, optimized_coverage
from backends.tensorrt.graph import fold_int32_bias

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


def test_onnx_coverage_finds_the_int8_convolutions(graphs):
    _, _, folder = graphs
    folded, _ = fold_int32_bias(onnx.load(str(folder / "tensorrt.onnx")))
    coverage = explicit_qdq_coverage(folded)
    assert coverage.int8 == {"Conv": 19, "Relu": 18, "MaxPool": 4, "ConvTranspose": 4, "Concat": 4}
    assert coverage.float == {}
    fp32 = explicit_qdq_coverage(folder / "model.onnx")  # no Q/DQ at all: everything float
    assert fp32.int8 == {} and fp32.float["Conv"] == 19


def test_onnx_runtime_fuses_the_cpu_preset_into_int8_kernels(graphs):
    _, _, folder = graphs
    fused = optimized_coverage(folder / "cpu.onnx")
    assert fused.int8["QLinearConv"] == 19 and fused.int8_count > fused.float_count
    unfused = fused_coverage(onnx.load(str(folder / "cpu.onnx")))  # before ORT's fusions: Q/DQ around float ops
    assert unfused.int8 == {} and unfused.boundaries["QuantizeLinear"] > 0


def _graph(nodes, initializers):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializers))


def test_shape_arithmetic_is_not_counted_as_float_ops():
    """A Resize's output size computed from Shape -> Gather -> Concat (what dynamic-shape exports hold) is
    bookkeeping; only the Resize is a float op of the model."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "first_two"], ["batch_channels"]),
        helper.make_node("Concat", ["batch_channels", "new_size"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 1], np.int64), "first_two"),
        numpy_helper.from_array(np.array([16, 16], np.int64), "new_size"),
    ]
    model = _graph(nodes, inits)
    for found in (fused_coverage(model), explicit_qdq_coverage(model)):
        assert found.float == {"Resize": 1} and found.int8 == {}


def test_depthwise_and_grouped_convolutions_are_told_apart():
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("Conv", ["x", "dense"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "depthwise"], ["b"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b", "grouped"], ["y"], group=2, pads=[1, 1, 1, 1]),
    ]
    inits = [
        numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "dense"),
        numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "depthwise"),
        numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "grouped"),
    ]
    assert fused_coverage(_graph(nodes, inits)).float == {"Conv": 1, "Conv (depthwise)": 1, "Conv (grouped)": 1}
