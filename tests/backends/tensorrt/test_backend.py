"""The TensorRT backends. Everything but the last test runs without TensorRT or a GPU: availability,
options, where the int8 coverage comes from, the inspector's JSON, and the error paths of the engine
build against a stand-in `tensorrt` module (the graphs TensorRT is given are tested in
tests/bench/onnx/test_tensorrt_graph.py)."""

import json
import sys
import types

import numpy as np
import pytest
import torch

from backends.tensorrt.backend import (
    ENGINE_FILE,
    TensorRtFp16Backend,
    TensorRtInt8Backend,
    _network_flags,
    build_engine,
    engine_coverage,
    int8_coverage,
)
from bench.errors import UsageError
from bench.models import create_model
from tests.helpers import prepare

BACKENDS = (TensorRtInt8Backend, TensorRtFp16Backend)


@pytest.fixture(scope="module")
def graphs():
    """A random-weight U-Net on 32x32 and calibration images, for the real engine."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    return model, calibration


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
    expected = (
        "tensorrt is not importable"
        if not _tensorrt_importable()
        else f"{backend.name} does not support device 'cpu' (supports cuda)"
    )
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
    assert backend.parse_options({}).as_strings() == {
        "max_batch": "32",
        "opt_batch": "1",
        "calibration": "minmax",
        "float_layers": "",
    }
    assert backend.parse_options({"max_batch": "8"}).max_batch == 8
    with pytest.raises(UsageError, match="tensorrt-int8: need 1 <= opt_batch <= max_batch, got 8 and 4"):
        backend.parse_options({"max_batch": "4", "opt_batch": "8"})
    with pytest.raises(UsageError, match="option tensorrt-int8.max_batch=many is not valid; expected an integer"):
        backend.parse_options({"max_batch": "many", "opt_batch": "1"})


# ---------------------------------------------------------------- coverage


def test_int8_coverage_prefers_the_engine_and_falls_back_to_the_graph():
    onnx_only = {"coverage_onnx": {"int8": {"Conv": 19}, "float": {}}}
    assert int8_coverage(onnx_only) == ({"int8": {"Conv": 19}, "float": {}}, "Q/DQ graph")
    engine = {"int8": {"CaskConvolution": 12}, "float": {"PointWiseV2": 1}}
    assert int8_coverage({**onnx_only, "coverage_engine": engine}) == (engine, "engine inspector")


def test_engine_coverage_reads_both_inspector_schemas():
    # TensorRT 8-10 write one "Format/Datatype" string per tensor (the developer guide's kDETAILED example)...
    v10 = {
        "Layers": [
            {
                "Name": "conv1",
                "LayerType": "CaskConvolution",
                "Inputs": [
                    {"Name": "x", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}
                ],
            },
            {
                "Name": "head",
                "LayerType": "CaskConvolution",
                "Inputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32 format"}],
            },
            {
                "Name": "reformat",
                "LayerType": "Reformat",
                "Inputs": [{"Format/Datatype": "Row major linear FP32 format"}],
            },
        ],
        "Bindings": ["input", "logits"],
    }
    # ...TensorRT 11 splits it into "Format" and "DataType" (migration guide, IEngineInspector JSON output).
    v11 = {
        "Layers": [
            {
                "Name": "conv1",
                "LayerType": "CaskConvolution",
                "Inputs": [{"Name": "x", "DataType": "Int8", "Format": "Thirty-two wide channel vectorized row major"}],
            },
            {
                "Name": "pool",
                "LayerType": "CaskPooling",
                "Inputs": [{"Name": "z", "DataType": "Half", "Format": "kLINEAR"}],
            },
        ],
        "I/O Tensors": [],
    }
    assert engine_coverage(json.dumps(v10)).int8 == {"CaskConvolution": 1}
    assert engine_coverage(json.dumps(v10)).float == {"CaskConvolution": 1}
    assert engine_coverage(json.dumps(v11)).int8 == {"CaskConvolution": 1}
    assert engine_coverage(json.dumps(v11)).float == {"CaskPooling": 1}
    unresolved = {
        "Layers": [
            {"LayerType": "NoOp", "Inputs": [{"Format/Datatype": "N/A due to dynamic shapes"}]},
            {"LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": "N/A due to dynamic shapes"}]},
        ]
    }
    assert engine_coverage(json.dumps(unresolved)) is None
    assert engine_coverage(json.dumps({"Layers": ["conv1", "head"]})) is None  # LAYER_NAMES_ONLY


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
@pytest.mark.integration  # quantizes, builds an engine
def test_real_engine_builds_runs_and_times_on_its_stream(cls, tolerance, graphs, tmp_path):
    if not _tensorrt_importable():  # importorskip alone would error on an OSError from a missing libnvinfer
        pytest.skip("tensorrt is not importable")
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, calibration = graphs
    backend = cls()
    artifact = prepare(backend, tmp_path, model, calibration, device="cuda", options={"max_batch": "8"})
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
