"""The TensorRT backends. Everything but the last test runs without TensorRT or a GPU: availability,
the Q/DQ checks TensorRT needs, the int32-bias fold, the ONNX-derived coverage, the fp16 graph, and
the error paths of the engine build against a stand-in `tensorrt` module."""

import json
import sys
import types

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from backends.tensorrt import (
    ENGINE_FILE,
    TensorRtFp16Backend,
    TensorRtInt8Backend,
    _network_flags,
    build_engine,
    check_fp16_onnx,
    check_tensorrt_qdq,
    engine_coverage,
    fold_int32_bias,
    fp16_onnx,
    qdq_coverage,
    qdq_onnx_from_fp32,
)
from bench.backend import Artifact, PrepareContext
from bench.errors import UsageError
from bench.models import create_model
from bench.onnx_export import export_onnx
from bench.onnx_quant import quantize_qdq

BACKENDS = (TensorRtInt8Backend, TensorRtFp16Backend)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """A random-weight U-Net on 32x32, its fp32 export, and both quantizer presets' output."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    folder = tmp_path_factory.mktemp("onnx")
    fp32 = export_onnx(model, (1, 32, 32), folder / "model.onnx")
    for preset in ("tensorrt", "cpu"):
        quantize_qdq(fp32, folder / f"{preset}.onnx", calibration, preset=preset)
    return model, calibration, folder


def _tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return True


# ---------------------------------------------------------------- availability


@pytest.mark.parametrize("cls", BACKENDS)
def test_declares_names_precisions_and_cuda_only(cls):
    backend = cls()
    assert backend.devices == ("cuda",)
    assert (backend.name, backend.precisions) in {("tensorrt-int8", ("int8",)), ("tensorrt-fp16", ("fp16",))}
    expected = "tensorrt is not importable" if not _tensorrt_importable() else \
        f"{backend.name} does not support device 'cpu' (supports cuda)"
    assert backend.unavailable_reason("cpu") == expected


@pytest.mark.parametrize("cls", BACKENDS)
def test_unavailable_with_the_exact_reason_on_this_machine(cls):
    reason = cls().unavailable_reason("cuda")
    if not _tensorrt_importable():
        assert reason == "tensorrt is not importable"
    elif not torch.cuda.is_available():
        assert reason == "no CUDA device"
    else:
        assert reason is None


@pytest.mark.parametrize("cls", BACKENDS)
def test_no_cuda_is_reported_after_tensorrt_imports(cls, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cls().unavailable_reason("cuda") == "no CUDA device"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cls().unavailable_reason("cuda") is None


def test_batch_options_are_validated():
    backend = TensorRtInt8Backend()
    assert backend.resolve_options({}) == {"max_batch": "32", "opt_batch": "1", "calibration": "minmax"}
    with pytest.raises(UsageError, match="opt_batch <= max_batch"):
        backend._batches({"max_batch": "4", "opt_batch": "8"})
    with pytest.raises(UsageError, match="integers"):
        backend._batches({"max_batch": "many", "opt_batch": "1"})


# ---------------------------------------------------------------- Q/DQ checks and fold


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
    assert not [n for n in folded.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("bias_quantized")]


def test_folding_the_biases_changes_no_output(graphs):
    import onnxruntime as ort

    _, calibration, folder = graphs
    raw = onnx.load(str(folder / "tensorrt.onnx"))
    folded, _ = fold_int32_bias(raw)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"input": calibration[:2]})[0]
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


# ---------------------------------------------------------------- coverage


def test_onnx_coverage_finds_the_int8_convolutions(graphs):
    _, _, folder = graphs
    folded, _ = fold_int32_bias(onnx.load(str(folder / "tensorrt.onnx")))
    coverage = qdq_coverage(folded)
    assert coverage.int8 == {"Conv": 19, "Relu": 18, "MaxPool": 4, "ConvTranspose": 4, "Concat": 4}
    assert coverage.float == {}
    fp32 = qdq_coverage(folder / "model.onnx")  # no Q/DQ at all: everything float
    assert fp32.int8 == {} and fp32.float["Conv"] == 19


def test_int8_backend_prefers_engine_coverage_and_falls_back_to_the_graph(tmp_path):
    backend = TensorRtInt8Backend()
    onnx_only = Artifact(tmp_path, {"coverage_onnx": {"int8": {"Conv": 19}, "float": {}}})
    assert backend.coverage(onnx_only).int8 == {"Conv": 19}
    both = Artifact(tmp_path, {"coverage_onnx": {"int8": {"Conv": 19}, "float": {}},
                               "coverage_engine": {"int8": {"CaskConvolution": 12}, "float": {"PointWiseV2": 1}}})
    assert backend.coverage(both).int8 == {"CaskConvolution": 12} and backend.coverage(both).float_count == 1
    assert "engine inspector" in backend.notes(both) and "Q/DQ graph" in backend.notes(onnx_only)
    assert TensorRtFp16Backend().coverage(both) is None


def test_engine_coverage_reads_both_inspector_schemas():
    # TensorRT 8-10 write one "Format/Datatype" string per tensor (the developer guide's kDETAILED example)...
    v10 = {"Layers": [
        {"Name": "conv1", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "x", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}]},
        {"Name": "head", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32 format"}]},
        {"Name": "reformat", "LayerType": "Reformat", "Inputs": [{"Format/Datatype": "Row major linear FP32 format"}]},
    ], "Bindings": ["input", "logits"]}
    # ...TensorRT 11 splits it into "Format" and "DataType" (migration guide, IEngineInspector JSON output).
    v11 = {"Layers": [
        {"Name": "conv1", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "x", "DataType": "Int8", "Format": "Thirty-two wide channel vectorized row major"}]},
        {"Name": "pool", "LayerType": "CaskPooling", "Inputs": [{"Name": "z", "DataType": "Half", "Format": "kLINEAR"}]},
    ], "I/O Tensors": []}
    assert engine_coverage(json.dumps(v10)).int8 == {"CaskConvolution": 1}
    assert engine_coverage(json.dumps(v10)).float == {"CaskConvolution": 1}
    assert engine_coverage(json.dumps(v11)).int8 == {"CaskConvolution": 1}
    assert engine_coverage(json.dumps(v11)).float == {"CaskPooling": 1}
    unresolved = {"Layers": [{"LayerType": "NoOp", "Inputs": [{"Format/Datatype": "N/A due to dynamic shapes"}]},
                             {"LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": "N/A due to dynamic shapes"}]}]}
    assert engine_coverage(json.dumps(unresolved)) is None
    assert engine_coverage(json.dumps({"Layers": ["conv1", "head"]})) is None  # LAYER_NAMES_ONLY


# ---------------------------------------------------------------- fp16 graph


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


# ---------------------------------------------------------------- engine build against a stand-in module


def _fake_tensorrt(version: str, parse_ok: bool = False) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    severity = types.SimpleNamespace(INTERNAL_ERROR="internal", ERROR="error", WARNING="warning")

    class ILogger:
        Severity = severity

        def __init__(self):
            pass

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return types.SimpleNamespace(flags=flags)

    class OnnxParser:
        num_errors = 1

        def __init__(self, network, logger):
            logger.log(severity.ERROR, "logged by the parser")

        def parse_from_file(self, path):
            return parse_ok

        def get_error(self, index):
            return "In node 3 with name: Conv and operator: Conv (parseGraph): UNSUPPORTED_NODE"

    trt.ILogger, trt.Builder, trt.OnnxParser = ILogger, Builder, OnnxParser
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    return trt


def test_parser_errors_are_in_the_exception(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt("10.9.0"))
    with pytest.raises(RuntimeError, match="ONNX parser rejected model.onnx: .*UNSUPPORTED_NODE"):
        build_engine(tmp_path / "model.onnx", tmp_path / ENGINE_FILE, (1, 32, 32), max_batch=32)
    assert not (tmp_path / ENGINE_FILE).exists()


def test_strongly_typed_flag_only_on_tensorrt_10():
    assert _network_flags(_fake_tensorrt("10.9.0")) == 1 << 1
    assert _network_flags(_fake_tensorrt("11.0.0")) == 0  # deprecated and ignored: always strongly typed


# ---------------------------------------------------------------- a real engine (TensorRT and CUDA only)


@pytest.mark.gpu
@pytest.mark.parametrize("cls, tolerance", [(TensorRtInt8Backend, 0.1), (TensorRtFp16Backend, 1e-2)])
def test_real_engine_builds_runs_and_times_on_its_stream(cls, tolerance, graphs, tmp_path):
    if not _tensorrt_importable():  # importorskip alone would error on an OSError from a missing libnvinfer
        pytest.skip("tensorrt is not importable")
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, calibration, _ = graphs
    backend = cls()
    ctx = PrepareContext(model_name="unet", model=model, calibration=calibration, input_shape=(1, 32, 32),
                         num_classes=2, precision=backend.default_precision, device="cuda",
                         options=backend.resolve_options({"max_batch": "8"}))
    artifact = Artifact(tmp_path, backend.prepare(ctx, tmp_path))
    assert [p.name for p in artifact.files] == [ENGINE_FILE]  # the ONNX graph is not part of the artifact
    session = backend.load(artifact, "cuda", threads=1)
    assert session.timer == "cuda_event"
    x = calibration[:3]
    out = session.to_numpy(session.run(session.to_input(x)))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape == (3, 2, 32, 32)
    assert np.abs(out - ref).max() / np.abs(ref).max() < tolerance
    session.reset_device_memory()
    assert session.time_call(session.to_input(x)) > 0
    peak, method = session.device_memory_peak()
    assert peak > 0 and "max_memory_allocated" in method
    with pytest.raises(ValueError, match="max_batch"):
        session.to_input(np.concatenate([calibration, calibration]))  # 16 > 8
    if cls is TensorRtInt8Backend:
        assert backend.coverage(artifact).int8_count > 0
