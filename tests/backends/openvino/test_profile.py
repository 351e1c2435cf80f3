"""OpenVINO's profiled pass (`OpenVinoSession.profile`, PERF_COUNT) on a random-weight U-Net at 96x96: the
float IR (weights keep their ONNX names) and NNCF's int8 IR (they keep none: layers from the artifact's
layer output tensors); and the counter arithmetic on stand-in records."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from backends.onnx.export import export_onnx, layer_tensors  # noqa: E402
from backends.onnx.layers import weighted_nodes  # noqa: E402
from backends.openvino.profile import (  # noqa: E402
    Counter,
    counted_times,
    exec_precision,
    read_counters,
)
from backends.openvino.quantize import nncf_quantize  # noqa: E402
from backends.openvino.runtime import OpenVinoSession, read_onnx, save_ir  # noqa: E402
from bench.models import create_model  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

SIZE = 96
CALLS = 10
WEIGHTED = ("Convolution", "ConvolutionBackpropData")


@pytest.fixture(scope="module")
def irs(tmp_path_factory):
    """The float IR, NNCF's int8 IR, the export's module path -> tensor map, its layers and one image."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((4, 1, SIZE, SIZE)).astype(np.float32)
    folder = tmp_path_factory.mktemp("ov-profile")
    onnx_path = export_onnx(model, (1, SIZE, SIZE), folder / "model.onnx")
    (folder / "fp32").mkdir()
    (folder / "int8").mkdir()
    fp32 = save_ir(read_onnx(onnx_path, (1, SIZE, SIZE)), folder / "fp32")
    int8 = save_ir(nncf_quantize(read_onnx(onnx_path, (1, SIZE, SIZE)), calibration), folder / "int8")
    layers = sorted(layer.name for layer in weighted_nodes(onnx_path))
    return fp32, int8, layer_tensors(onnx_path), layers, calibration[:1]


def _unprofiled_call_us(session: OpenVinoSession, inputs: np.ndarray) -> float:
    for _ in range(3):
        session.run(inputs)
    # the 10th percentile: another process can only make calls slower, and a slow unprofiled
    # reference would let a profile that misses work pass or fail by chance
    return float(np.percentile([session.time_call(inputs) for _ in range(30)], 10)) / 1e3


def _profiled(xml, image, work_dir, tensors=None):
    """(the profile, the lower of two unprofiled lower deciles taken around it, in µs per call)."""
    session = OpenVinoSession(xml, 1, "fp32", tensors)
    inputs = session.to_input(image)
    before = _unprofiled_call_us(session, inputs)
    profile = session.profile(inputs, CALLS, work_dir)
    return profile, min(before, _unprofiled_call_us(session, inputs))


def _check_the_pass(profile, call_us):
    assert profile.method == "openvino PERF_COUNT" and profile.calls == CALLS
    assert profile.ops and {op.calls for op in profile.ops} == {CALLS}
    # the warm-up's share is out of OpenVINO's running means: the ops fit in the counted calls' wall time
    assert profile.ops_us <= profile.wall_us
    assert profile.ops_us / CALLS >= 0.8 * call_us, (profile.ops_us / CALLS, call_us)
    assert all(op.precision for op in profile.ops if op.op_type in WEIGHTED)


def test_fp32_ir_layers_come_from_the_weight_names(irs, tmp_path):
    fp32, _, _, layers, image = irs
    profile, call_us = _profiled(fp32, image, tmp_path)
    _check_the_pass(profile, call_us)
    weighted = [op for op in profile.ops if op.op_type in WEIGHTED]
    assert sorted(op.layer for op in weighted) == layers
    assert {op.precision for op in weighted} == {"fp32"}  # the f32 hint holds on an AMX/BF16 CPU too
    pools = [op for op in profile.ops if op.op_type == "MaxPool"]
    assert [op.layer for op in pools] == ["encoder.0.2", "encoder.1.2", "encoder.2.2", "encoder.3.2"]
    assert "no layer output tensors given" in profile.attribution


def test_int8_ir_runs_int8_kernels_named_through_the_layer_tensors(irs, tmp_path):
    _, int8, tensors, layers, image = irs
    profile, call_us = _profiled(int8, image, tmp_path, tensors)
    _check_the_pass(profile, call_us)
    weighted = [op for op in profile.ops if op.op_type in WEIGHTED]
    assert sorted(op.layer for op in weighted) == layers
    assert {op.precision for op in weighted} == {"int8"}
    quantize = [op for op in profile.ops if op.category == "quantize"]
    assert quantize and quantize[0].layer == ""  # the input's FakeQuantize, run as a snippets Subgraph
    assert "layer output tensors" in profile.attribution and not list(tmp_path.iterdir())


def test_int8_ir_without_layer_tensors_names_no_layer_rather_than_a_wrong_one(irs, tmp_path):
    _, int8, _, _, image = irs
    session = OpenVinoSession(int8, 1, "fp32")
    profile = session.profile(session.to_input(image), 2, tmp_path)
    assert {op.layer for op in profile.ops} == {""} and "keep no name" in profile.attribution


# ---------------------------------------------------------------- counters, without a compile


class _Status:
    def __init__(self, name: str) -> None:
        self.name = name


class _Info:
    def __init__(self, name: str, status: str, us: int, exec_type: str = "jit_avx512_f32") -> None:
        self.node_name, self.node_type, self.exec_type = name, "Convolution", exec_type
        self.status, self.real_time = _Status(status), timedelta(microseconds=us)


def test_nodes_that_did_not_run_are_left_out():
    infos = [_Info("a", "EXECUTED", 5), _Info("b", "NOT_RUN", 0), _Info("c", "OPTIMIZED_OUT", 0)]
    assert list(read_counters(infos)) == ["a"]


def test_the_warm_up_is_taken_out_of_the_running_means():
    """OpenVINO reports each node's mean since compilation: 2 warm-up calls of 100 µs, then 10 of 10 µs
    read as a mean of 25 µs over 12 calls; the counted 10 calls took 100 µs."""
    before = {"conv": Counter("Convolution", "brgconv_avx512_amx_I8", 100.0)}
    after = {"conv": Counter("Convolution", "brgconv_avx512_amx_I8", 25.0)}
    (node,) = counted_times(before, after, 2, 10).values()
    assert (node.calls, node.total_us) == (10, 100.0)


@pytest.mark.parametrize(
    "exec_type, precision",
    [
        ("brgconv_avx512_amx_I8", "int8"),
        ("jit_avx512_i8", "int8"),
        ("ref_u8", "int8"),
        ("brgconv_avx512_f32", "fp32"),
        ("brgconv_avx512_amx_bf16", "bf16"),
        ("jit_uni_f16", "fp16"),
        ("undef", ""),
    ],
)
def test_precision_is_the_kernels_last_token(exec_type, precision):
    assert exec_precision(exec_type) == precision
