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
