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
