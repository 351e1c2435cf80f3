"""The TensorRT profile (`TensorRtSession.profile`, a `trt.IProfiler`) without TensorRT or a GPU: the
session's profiled pass against a stand-in `tensorrt` module and execution context that report layer
times as TensorRT does (once per layer and call), the inspector's types and precisions, and the module
paths found from the ONNX node names in the engine's layer names, on the graphs TensorRT is given."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from backends.onnx.export import export_onnx
from backends.onnx.node_layers import onnx_node_layers
from backends.tensorrt.backend import (
    PROFILE_WARMUP_CALLS,
    LayerTimes,
    TensorRtBindings,
    TensorRtSession,
    engine_layer_info,
    tensorrt_layer,
    tensorrt_profile,
)
from backends.tensorrt.graph import fp16_onnx, qdq_onnx_from_fp32
from bench.models import create_model

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

# What the inspector writes for a DETAILED engine (TensorRT 10 schema: one "Format/Datatype" string).
INSPECTOR = {
    "Layers": [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0 to node_conv2d + node_relu",
            "LayerType": "Reformat",
            "Inputs": [{"Name": "input", "Format/Datatype": "Row major linear FP32 format (NCHW)"}],
            "Outputs": [{"Name": "x", "Format/Datatype": "Channel major linear Int8 format"}],
        },
        {
            "Name": "node_conv2d + node_relu",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Name": "x", "Format/Datatype": "Channel major linear Int8 format"}],
            "Outputs": [{"Name": "y", "Format/Datatype": "Channel major linear Int8 format"}],
        },
        {
            "Name": "node_convolution",
            "LayerType": "CaskDeconvolution",
            "Inputs": [{"Name": "y", "DataType": "Half"}],
            "Outputs": [{"Name": "z", "DataType": "Half"}],
        },
    ]
}
NODE_LAYERS = {"node_conv2d": "encoder.0.0", "node_relu": "encoder.0.0", "node_convolution": "upsample.0"}


class _Context:
    """An execution context that reports `times[call]` to its profiler on each run, as TensorRT does."""

    def __init__(self, times: list[dict[str, float]]) -> None:
        self.times, self.call, self.profiler = times, 0, None

    def set_input_shape(self, name, shape):
        return True

    def set_tensor_address(self, name, address):
        pass

    def execute_async_v3(self, stream):
        for layer, ms in self.times[self.call].items():
            self.profiler.report_layer_time(layer, ms)
        self.call += 1
        return True


class _Inspector:
    execution_context = None

    def get_engine_information(self, fmt):
        assert fmt == "json"
        return json.dumps(INSPECTOR)


class _Engine:
    def create_engine_inspector(self):
        return _Inspector()


class _Stream:
    cuda_stream = 0

    def synchronize(self):
        pass


def _stand_in_tensorrt() -> types.ModuleType:
    trt = types.ModuleType("tensorrt")

    class IProfiler:
        def __init__(self) -> None:
            pass

    trt.IProfiler = IProfiler
    trt.LayerInformationFormat = types.SimpleNamespace(JSON="json")
    return trt


def _session(times: list[dict[str, float]]) -> TensorRtSession:
    """A TensorRtSession over the stand-in context and engine (no engine file, no CUDA)."""
    session = object.__new__(TensorRtSession)
    session.context, session.engine, session.stream = _Context(times), _Engine(), _Stream()
    session.logger = types.SimpleNamespace(errors=[])
    session.input_name, session.output_name, session._bound = "input", "logits", None
    session.profile_layers = dict(NODE_LAYERS)
    return session


def test_the_profiled_pass_sums_each_layer_over_the_counted_calls_only(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_tensorrt())
    warm_up = {"node_conv2d + node_relu": 50.0, "node_convolution": 50.0}  # slow first calls, not counted
    counted = {
        "Reformatting CopyNode for Input Tensor 0 to node_conv2d + node_relu": 0.01,
        "node_conv2d + node_relu": 0.25,
        "node_convolution": 0.5,
    }
    calls = 4
    session = _session([warm_up] * PROFILE_WARMUP_CALLS + [counted] * calls)
    bindings = TensorRtBindings(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8))
    profile = session.profile(bindings, calls, tmp_path)
    assert session.context.call == PROFILE_WARMUP_CALLS + calls and session.context.profiler is None  # detached
    assert profile.method == "tensorrt IProfiler" and profile.calls == calls and profile.wall_us > 0
    ops = {op.name: op for op in profile.ops}
    conv = ops["node_conv2d + node_relu"]
    assert (conv.op_type, conv.layer, conv.precision, conv.calls) == ("CaskConvolution", "encoder.0.0", "int8", 4)
    assert conv.total_us == pytest.approx(4 * 250.0)
    deconv = ops["node_convolution"]
    assert (deconv.layer, deconv.precision, deconv.total_us) == ("upsample.0", "fp16", pytest.approx(2000.0))
    reformat = ops["Reformatting CopyNode for Input Tensor 0 to node_conv2d + node_relu"]
    assert (reformat.category, reformat.precision) == ("reorder", "int8")
    assert profile.ops_us == pytest.approx(4 * (10.0 + 250.0 + 500.0))
    assert "ONNX node names" in profile.attribution and not list(tmp_path.iterdir())


def test_a_failing_inspector_leaves_the_times_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_tensorrt())
    session = _session([{"node_convolution": 1.0}] * (PROFILE_WARMUP_CALLS + 2))
    session.engine = types.SimpleNamespace()  # no create_engine_inspector
    profile = session.profile(TensorRtBindings(torch.zeros(1), torch.zeros(1)), 2, tmp_path)
    (op,) = profile.ops
    assert (op.op_type, op.precision, op.layer, op.total_us) == ("", "", "upsample.0", pytest.approx(2000.0))
    assert "engine inspector failed" in profile.notes


def test_layer_times_count_every_report():
    times = LayerTimes()
    for ms in (0.5, 0.25):
        times.report_layer_time("a", ms)
    times.report_layer_time("b", 1.0)
    assert times.calls == {"a": 2, "b": 1} and times.total_ms == {"a": 0.75, "b": 1.0}
    profile = tensorrt_profile(times, 2, 3000.0, {}, {})
    assert profile.ops_us == pytest.approx(1750.0) and "no profile_layers" in profile.attribution
    times.clear()
    assert times.calls == {} and times.total_ms == {}


def test_inspector_types_and_precisions_from_both_schemas():
    info = engine_layer_info(json.dumps(INSPECTOR))
    assert info["node_conv2d + node_relu"] == ("CaskConvolution", "int8")
    assert info["node_convolution"] == ("CaskDeconvolution", "fp16")
    assert engine_layer_info(json.dumps({"Layers": ["names only"]})) == {}


def test_fused_and_myelin_layer_names_give_one_layer_or_none():
    assert tensorrt_layer("node_conv2d + node_relu", NODE_LAYERS) == "encoder.0.0"
    assert tensorrt_layer("{ForeignNode[node_conv2d...node_relu]}", NODE_LAYERS) == "encoder.0.0"
    assert tensorrt_layer("{ForeignNode[node_conv2d...node_convolution]}", NODE_LAYERS) == ""  # two layers
    assert tensorrt_layer("Reformatting CopyNode for Input Tensor 0 to node_conv2d", NODE_LAYERS) == ""


@pytest.fixture(scope="module")
def trt_graphs(tmp_path_factory):
    """The two graphs the TensorRT backends build engines from, at 32x32."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    folder = tmp_path_factory.mktemp("trt-graphs")
    fp32 = export_onnx(model, (1, 32, 32), folder / "model.fp32.onnx")
    qdq_onnx_from_fp32(fp32, calibration, folder / "model.qdq.onnx")
    fp16_onnx(model, (1, 32, 32), folder / "model.fp16.onnx")
    return folder


def test_node_layers_of_the_qdq_graph_tensorrt_is_given(trt_graphs):
    layers = onnx_node_layers(trt_graphs / "model.qdq.onnx")
    assert layers["node_conv2d"] == layers["node_relu"] == "encoder.0.0"  # the Relu TensorRT fuses into it
    assert layers["encoder.0.0.weight_DequantizeLinear"] == "encoder.0.0"
    assert layers["node_conv2d_18"] == "head" and layers["node_convolution"] == "upsample.0"
    assert tensorrt_layer("encoder.0.0.weight_DequantizeLinear + node_conv2d + node_relu", layers) == "encoder.0.0"


def test_node_layers_of_the_fp16_graph_lose_the_wrapper_prefix(trt_graphs):
    layers = onnx_node_layers(trt_graphs / "model.fp16.onnx", "inner.")
    assert layers["node_conv2d"] == "encoder.0.0" and not any(v.startswith("inner.") for v in layers.values())
