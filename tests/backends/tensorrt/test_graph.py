"""The graphs TensorRT is given, checked without TensorRT: the Q/DQ checks, the int32-bias fold, the
prepare pipeline's checked graph, and the fp16 graph."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from backends.tensorrt.graph import (
    check_fp16_onnx,
    check_tensorrt_qdq,
    fold_int32_bias,
    fp16_onnx,
    qdq_onnx_from_fp32,
)
from bench.errors import UsageError

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


def test_tensorrt_preset_passes_once_its_int32_biases_are_folded(graphs):
    _, _, folder = graphs
    raw = onnx.load(str(folder / "tensorrt.onnx"))
    problems = check_tensorrt_qdq(raw)
    # ONNX Runtime quantizes every Conv/ConvTranspose bias to an int32 DequantizeLinear (23 in this U-Net);
    # that is the only thing TensorRT would object to in the symmetric preset.
    assert len(problems) == 23 and all("int32 input (a quantized bias" in p for p in problems)
    folded, count = fold_int32_bias(raw)
    assert count == 23
    assert check_tensorrt_qdq(folded) == []
    assert not [
        n for n in folded.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("bias_quantized")
    ]


def test_folding_the_biases_changes_no_output(graphs):
    import onnxruntime as ort

    _, calibration, folder = graphs
    raw = onnx.load(str(folder / "tensorrt.onnx"))
    folded, _ = fold_int32_bias(raw)

    def run(model):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": calibration[:2]})[0]

    np.testing.assert_allclose(run(folded), run(raw), rtol=0, atol=1e-6)


def test_cpu_preset_fails_on_uint8_and_non_zero_zero_points(graphs):
    _, _, folder = graphs
    problems = check_tensorrt_qdq(folder / "cpu.onnx")
    assert any("uint8 zero point" in p for p in problems)
    assert any("non-zero zero point" in p for p in problems)
    folded, _ = fold_int32_bias(onnx.load(str(folder / "cpu.onnx")))
    assert any("uint8" in p for p in check_tensorrt_qdq(folded))  # folding biases does not hide it


def _weight_dq(model, op_type):
    graph = model.graph
    conv = next(n for n in graph.node if n.op_type == op_type)
    return next(n for n in graph.node if n.output and n.output[0] == conv.input[1])


def test_weight_scales_must_be_per_channel_along_the_output_axis(graphs):
    _, _, folder = graphs
    folded, _ = fold_int32_bias(onnx.load(str(folder / "tensorrt.onnx")))
    # ConvTranspose weights are (Cin, Cout, kH, kW): the quantizer puts their scales on axis 1.
    deconv = _weight_dq(folded, "ConvTranspose")
    assert [a.i for a in deconv.attribute if a.name == "axis"] == [1]
    for attr in deconv.attribute:
        if attr.name == "axis":
            attr.i = 0
    problems = check_tensorrt_qdq(folded)
    assert len(problems) == 1 and "along axis 0" in problems[0] and "expected per-channel along axis 1" in problems[0]

    folded, _ = fold_int32_bias(onnx.load(str(folder / "tensorrt.onnx")))
    conv = _weight_dq(folded, "Conv")
    inits = {i.name: i for i in folded.graph.initializer}
    scale = inits[conv.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale)[:1].reshape(()), scale.name))
    zero = inits[conv.input[2]]
    zero.CopyFrom(numpy_helper.from_array(np.zeros((), np.int8), zero.name))
    problems = check_tensorrt_qdq(folded)
    assert len(problems) == 1 and "per-tensor scale" in problems[0] and "axis 0" in problems[0]


def test_the_prepare_pipeline_writes_a_checked_graph_with_int8_coverage(graphs, tmp_path):
    _, calibration, folder = graphs
    done = qdq_onnx_from_fp32(folder / "model.onnx", calibration, tmp_path / "model.qdq.onnx")
    assert done["preset"] == "tensorrt" and done["int32_biases_folded"] == 23
    assert check_tensorrt_qdq(tmp_path / "model.qdq.onnx") == []
    assert [o.domain for o in onnx.load(str(tmp_path / "model.qdq.onnx")).opset_import] == [""]  # no ORT-only domains
    assert done["coverage_onnx"]["int8"]["Conv"] == 19 and done["coverage_onnx"]["float"] == {}


def test_float_layers_reach_tensorrt_as_convs_without_qdq(graphs, tmp_path):
    """The TensorRT int8 graph keeps a layer in float the ONNX way: no Q/DQ on its weight or data, so
    TensorRT's explicit-quantization parser builds it in float (its coverage rule says so)."""
    _, calibration, folder = graphs
    done = qdq_onnx_from_fp32(folder / "model.onnx", calibration, tmp_path / "q.onnx", float_layers=("encoder.0.2",))
    assert done["nodes_excluded"] and done["coverage_onnx"]["int8"]["Conv"] == 18
    assert done["coverage_onnx"]["float"] == {"Conv": 1, "Relu": 1}  # its ReLU gets no Q/DQ either


def test_a_float_layer_that_is_not_there_names_tensorrts_option(graphs, tmp_path):
    """The shared ONNX Runtime quantizer builds TensorRT's int8 graph too: its error names tensorrt-int8."""
    _, calibration, folder = graphs
    with pytest.raises(UsageError, match="tensorrt-int8") as raised:
        qdq_onnx_from_fp32(folder / "model.onnx", calibration, tmp_path / "q.onnx", float_layers=("no.such.layer",))
    assert "ort-qdq-int8" not in str(raised.value)


def test_fp16_graph_has_fp16_weights_float32_io_and_leaves_the_model_alone(graphs, tmp_path):
    import onnxruntime as ort

    model, calibration, folder = graphs
    done = fp16_onnx(model, (1, 32, 32), tmp_path / "model.fp16.onnx")
    assert done["onnx_precision"] == "fp16"
    fp16 = onnx.load(str(tmp_path / "model.fp16.onnx"))
    graph = fp16.graph
    assert check_fp16_onnx(fp16) == []
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert next(model.parameters()).dtype == torch.float32  # the caller's model was copied, not halved
    assert check_fp16_onnx(folder / "model.onnx")  # the fp32 export is not fp16
    x = calibration[:2]
    out = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.dtype == np.float32 and 0 < np.abs(out - ref).max() / np.abs(ref).max() < 1e-2
