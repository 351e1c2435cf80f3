"""ONNX Runtime's profiled pass (`OrtSession.profile`) on a random-weight U-Net at 96x96 (a few ms a
call on one thread, so the node times are worth comparing with an unprofiled call): the fp32 graph (ORT
turns it into NCHWc convolutions with reordered weights) and the QDQ int8 graph (fused QLinearConv)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backends.onnx.export import export_onnx
from backends.onnx.layers import weighted_nodes
from backends.onnxruntime.profile import (
    OPTIMIZED_FILE,
    PROFILE_PREFIX,
    WARMUP_CALLS,
    counted_node_events,
    node_precision,
    node_times,
    ort_profile,
)
from backends.onnxruntime.quantize import quantize_qdq
from backends.onnxruntime.session import OrtSession, session_options
from bench.models import create_model

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

SIZE = 96
CALLS = 10


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """The fp32 export, its QDQ int8 graph (cpu preset) and one input image."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, SIZE, SIZE)).astype(np.float32)
    folder = tmp_path_factory.mktemp("onnx-profile")
    fp32 = export_onnx(model, (1, SIZE, SIZE), folder / "model.onnx")
    int8 = folder / "model.int8.onnx"
    quantize_qdq(fp32, int8, calibration, preset="cpu")
    return fp32, int8, calibration[:1]


def _unprofiled_call_us(session: OrtSession, inputs: dict) -> float:
    for _ in range(3):
        session.run(inputs)
    # the 10th percentile: another process can only make calls slower, and a slow unprofiled
    # reference would let a profile that misses work pass or fail by chance
    return float(np.percentile([session.time_call(inputs) for _ in range(30)], 10)) / 1e3


def _profiled(path, image, work_dir):
    """(the profile, the lower of two unprofiled lower deciles taken around it, in µs per call)."""
    session = OrtSession(path, "cpu", threads=1)
    inputs = session.to_input(image)
    before = _unprofiled_call_us(session, inputs)
    profile = session.profile(inputs, CALLS, work_dir)
    return profile, min(before, _unprofiled_call_us(session, inputs))


def _check_the_pass(profile, call_us, work_dir):
    """What every profile must hold: each node counted once per profiled call (none of the warm-up), its
    ops inside the calls' wall time and, since the runtime only runs nodes, most of an unprofiled call."""
    assert profile.method == "onnxruntime enable_profiling" and profile.calls == CALLS
    assert profile.ops and {op.calls for op in profile.ops} == {CALLS}
    assert profile.ops_us <= profile.wall_us
    assert profile.ops_us / CALLS >= 0.8 * call_us, (profile.ops_us / CALLS, call_us)
    traces = list(work_dir.glob(f"{PROFILE_PREFIX}*.json"))
    assert len(traces) == 1 and traces[0].name in profile.notes  # the profiler's own file is kept
    assert (work_dir / OPTIMIZED_FILE).is_file()


def test_fp32_profile_names_every_layer_of_the_nchwc_graph(graphs, tmp_path):
    fp32, _, image = graphs
    profile, call_us = _profiled(fp32, image, tmp_path)
    _check_the_pass(profile, call_us, tmp_path)
    assert "optimized graph (optimized.onnx)" in profile.attribution
    convs = [op for op in profile.ops if op.op_type in ("Conv", "ConvTranspose")]
    assert {op.precision for op in profile.ops} == {"fp32"}
    # ORT's NCHWc convolutions read reordered weights: found by their bias, the head (its bias padded too)
    # by the name ORT gives it after the tensor it writes ("logits_nchwc")
    assert sorted(op.layer for op in convs) == sorted(layer.name for layer in weighted_nodes(fp32))
    layers = {op.name: op.layer for op in profile.ops}
    assert layers["logits_nchwc"] == "head"
    pools = [op for op in profile.ops if op.op_type == "MaxPool"]
    # named by the module they were made in (the export's name scopes), as torch-eager's hooks name them
    assert [op.layer for op in pools] == ["pool"] * 4
    assert all(op.layer == "" for op in profile.ops if op.op_type == "Concat")  # two layers read: none
    assert 0.8 < profile.attributed_us / profile.ops_us < 1.0


def test_qdq_profile_has_int8_kernels_with_their_layers(graphs, tmp_path):
    fp32, int8, image = graphs
    profile, call_us = _profiled(int8, image, tmp_path)
    _check_the_pass(profile, call_us, tmp_path)
    qconvs = [op for op in profile.ops if op.op_type == "QLinearConv"]
    assert len(qconvs) == 19 and {op.precision for op in qconvs} == {"int8"}
    expected = [layer.name for layer in weighted_nodes(fp32) if layer.op_type == "Conv"]
    assert sorted(op.layer for op in qconvs) == sorted(expected)
    # no int8 ConvTranspose on ORT's CPU provider: a float kernel between Q/DQ, its weights dequantized per call
    deconvs = [op for op in profile.ops if op.op_type == "ConvTranspose"]
    assert [(op.layer, op.precision) for op in deconvs] == [(f"upsample.{i}", "fp32") for i in range(4)]
    weight_dq = [op for op in profile.ops if op.name == "upsample.0.weight_DequantizeLinear"]
    assert weight_dq and weight_dq[0].layer == "upsample.0" and weight_dq[0].category == "dequantize"
    categories = {op.category for op in profile.ops}
    assert {"quantize", "dequantize", "compute"} <= categories
    first = profile.ops[0]
    assert (first.op_type, first.layer, first.precision) == ("QuantizeLinear", "", "int8")  # reads the input


def test_without_the_optimized_graph_layers_come_from_node_names(graphs, tmp_path):
    """Where ORT cannot save its optimized graph, the fused nodes' names (ORT's suffixes stripped) are
    matched against the original graph, and the attribution says so."""
    _, int8, image = graphs

    def no_saving(optimized):
        if optimized is not None:
            raise RuntimeError("cannot serialize")
        return session_options(1)

    inputs = OrtSession(int8, "cpu", 1).to_input(image)
    profile = ort_profile(int8, no_saving, ["CPUExecutionProvider"], inputs, 3, tmp_path)
    assert "no optimized graph: RuntimeError: cannot serialize" in profile.attribution
    assert not (tmp_path / OPTIMIZED_FILE).exists()
    layers = {op.name: op.layer for op in profile.ops if op.op_type == "QLinearConv"}
    assert layers["node_conv2d_token_1"] == "encoder.0.0" and len(set(layers.values())) == 19


# ---------------------------------------------------------------- the trace, without a session


def _event(cat, name, ts, dur, **args):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "args": args}


def test_only_node_events_inside_the_counted_runs_are_kept():
    events = [_event("Session", "session_initialization", 0, 50)]
    for run, start in enumerate((100, 200, 300, 400)):  # two warm-up runs, then two counted ones
        events.append(_event("Session", "model_run", start, 50))
        events.append(_event("Node", "conv_kernel_time", start + 10, 10 + run, op_name="Conv"))
        events.append(_event("Node", "conv_fence_before", start + 5, 1, op_name="Conv"))  # not a kernel
    kept = counted_node_events(events, WARMUP_CALLS)
    assert [event["ts"] for event in kept] == [310, 410]
    times = node_times(kept)
    assert list(times) == ["conv"] and times["conv"].calls == 2 and times["conv"].total_us == 12 + 13


def test_precision_is_the_narrowest_tensor_a_node_touches():
    assert node_precision({"input_type_shape": [{"uint8": [1]}, {"float": []}, {"int8": [4]}]}) == "int8"
    assert node_precision({"input_type_shape": [{"float": [1]}], "output_type_shape": [{"uint8": [1]}]}) == "int8"
    assert node_precision({"input_type_shape": [{"float": [1]}], "output_type_shape": [{"float16": [1]}]}) == "fp16"
    assert node_precision({"input_type_shape": [{"float": [1]}, {"float": [2]}]}) == "fp32"
    assert node_precision({"input_type_shape": [{"int64": [1]}]}) == ""


def test_the_trace_is_valid_json_with_model_runs(graphs, tmp_path):
    _, int8, image = graphs
    session = OrtSession(int8, "cpu", 1)
    session.profile(session.to_input(image), 2, tmp_path)
    (trace,) = tmp_path.glob(f"{PROFILE_PREFIX}*.json")
    runs = [e for e in json.loads(trace.read_text()) if e.get("name") == "model_run"]
    assert len(runs) == WARMUP_CALLS + 2
