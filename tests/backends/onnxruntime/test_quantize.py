"""The ort-qdq-int8 `format` option: QOperator writes the int8 operators into the file, QDQ leaves the
fusion to ONNX Runtime; both compute the same thing."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from backends.onnxruntime.quantize import quantize_qdq

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


def test_qoperator_writes_qlinear_convs_that_agree_with_the_qdq_graph(graphs, tmp_path):
    _, calibration, folder = graphs
    done = quantize_qdq(folder / "model.onnx", tmp_path / "qop.onnx", calibration, quant_format="qoperator")
    assert done["format"] == "qoperator"
    kinds = {node.op_type for node in onnx.load(str(tmp_path / "qop.onnx")).graph.node}
    qdq_kinds = {node.op_type for node in onnx.load(str(folder / "cpu.onnx")).graph.node}
    assert "QLinearConv" in kinds and "Conv" not in kinds  # in the file, not left to the session
    assert "QLinearConv" not in qdq_kinds and "DequantizeLinear" in qdq_kinds
    x = {"input": calibration[:2]}
    qop = ort.InferenceSession(str(tmp_path / "qop.onnx")).run(None, x)[0]
    qdq = ort.InferenceSession(str(folder / "cpu.onnx")).run(None, x)[0]
    assert np.abs(qop - qdq).max() <= 0.05 * np.abs(qdq).max()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """tests.helpers' TinyTransformer exported: dense and depthwise Conv, MatMuls with weights and between
    activations, LayerNormalization, Softmax, Add, GELU."""
    from backends.onnx.export import export_onnx
    from tests.helpers import tiny_transformer

    model, calibration = tiny_transformer()
    return export_onnx(model, (3, 8, 8), tmp_path_factory.mktemp("tiny") / "model.onnx"), calibration


def test_op_types_quantize_only_those_types_and_are_recorded(tiny_export, tmp_path):
    from backends.onnxruntime.coverage import optimized_coverage

    fp32, calibration = tiny_export
    everything = quantize_qdq(fp32, tmp_path / "all.onnx", calibration)
    convs = quantize_qdq(fp32, tmp_path / "conv.onnx", calibration, op_types=("Conv",))
    assert everything["op_types"] == [] and convs["op_types"] == ["Conv"]
    default, only_conv = optimized_coverage(tmp_path / "all.onnx"), optimized_coverage(tmp_path / "conv.onnx")
    assert default.int8["QLinearMatMul"] >= 2 and "MatMul" not in default.float
    assert default.int8["QLinearConv (depthwise)"] == 1  # told apart from the dense ones
    assert only_conv.int8["QLinearConv"] == 2 and only_conv.int8["QLinearConv (depthwise)"] == 1
    assert "QLinearMatMul" not in only_conv.int8 and "QLinearSoftmax" not in only_conv.int8
    assert {"Softmax", "LayerNormalization"} <= set(only_conv.float)
    assert any(op.endswith("MatMul") for op in only_conv.float)  # the attention MatMuls stay float


def test_op_types_are_checked_against_onnx_runtimes_registry_for_the_format():
    from backends.onnxruntime.quantize import op_types_problem, parse_op_types, quantizable_op_types

    assert parse_op_types(" Conv, MatMul,,Conv ") == ("Conv", "MatMul")
    assert op_types_problem("", "qdq") is None and op_types_problem("Conv,MatMul,Softmax", "qdq") is None
    assert "LayerNormalization" in quantizable_op_types("qdq")  # QDQRegistry
    assert "LayerNormalization" not in quantizable_op_types("qoperator")  # no QLinear operator for it
    problem = op_types_problem("Conv,Matmul", "qdq")
    assert problem is not None and "\n" not in problem
    assert problem.startswith("op_types=Conv,Matmul: Matmul is not an op type ONNX Runtime quantizes in qdq format")
    assert ", MatMul," in problem  # the valid ones are listed
    assert "LayerNormalization is not" in str(op_types_problem("LayerNormalization", "qoperator"))
