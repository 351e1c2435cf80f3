"""An ONNX QDQ head with a known answer: both methods must find it.

features A = ReLU(conv 3x3) (float), quantized to uint8 codes; logits = 1x1 conv of the dequantized
codes with per-channel int8 weights. With the class score summed over the pixels of the raw logit,
d score_c / d A_k(i, j) = W[c, k] (dequantized) at every pixel: the exact alpha of finite differences
on the codes and of fake-quant autograd alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from backends.onnxruntime.fakequant import OnnxFakeQuant, simulation_vs_session
from backends.onnxruntime.gradcam_cut import onnx_feature_split
from bench.gradcam.method import autograd_alphas, finite_difference_alphas

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

SCALE_A, ZERO_A = np.float32(0.02), np.uint8(3)
W_SCALE = np.array([0.01, 0.03], np.float32)
W_CODES = np.array([[5, -7, 12, 0], [-3, 9, 1, 20]], np.int8)  # (classes, K)


@pytest.fixture(scope="module")
def qdq_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    stem_w = (0.3 * rng.standard_normal((4, 1, 3, 3))).astype(np.float32)
    inits = [
        numpy_helper.from_array(stem_w, "stem_w"),
        numpy_helper.from_array(np.zeros(4, np.float32), "stem_b"),
        numpy_helper.from_array(SCALE_A, "a_scale"),
        numpy_helper.from_array(ZERO_A, "a_zero"),
        numpy_helper.from_array(W_CODES.reshape(2, 4, 1, 1), "w_codes"),
        numpy_helper.from_array(W_SCALE, "w_scale"),
        numpy_helper.from_array(np.zeros(2, np.int8), "w_zero"),
        numpy_helper.from_array(np.array([0.1, -0.2], np.float32), "head_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "stem_w", "stem_b"], ["conv_a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_a"], ["A"]),
        helper.make_node("QuantizeLinear", ["A", "a_scale", "a_zero"], ["A_q"]),
        helper.make_node("DequantizeLinear", ["A_q", "a_scale", "a_zero"], ["A_dq"]),
        helper.make_node("DequantizeLinear", ["w_codes", "w_scale", "w_zero"], ["w"], axis=0),
        helper.make_node("Conv", ["A_dq", "w", "head_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "known_head",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("qdq") / "known.onnx"
    onnx.save(model, str(path))
    return path


def _image() -> np.ndarray:
    return (0.5 * np.random.default_rng(1).standard_normal((1, 1, 8, 8))).astype(np.float32)


def _exact() -> np.ndarray:
    return W_CODES.astype(np.float64) * W_SCALE[:, None]


def test_finite_differences_on_the_codes_give_the_known_alphas(qdq_head) -> None:
    split = onnx_feature_split(qdq_head, "A", _image(), steps=4)
    assert split.meta["clipped"] == 0.0
    np.testing.assert_allclose(finite_difference_alphas(split, [0, 1], reduction="sum"), _exact(), rtol=1e-3, atol=1e-5)


def test_fake_quant_autograd_gives_the_same_alphas_and_the_sessions_logits(qdq_head) -> None:
    simulated = OnnxFakeQuant(qdq_head, {"layer": "A"}).eval()
    _, alphas = autograd_alphas(simulated, torch.from_numpy(_image()), ["layer"], [0, 1], reduction="sum")
    np.testing.assert_allclose(alphas["layer"][0].numpy(), _exact(), rtol=1e-5, atol=1e-7)
    drift, scale = simulation_vs_session(simulated, qdq_head, _image(), threads=1)
    assert scale > 0 and drift <= 1e-5 * max(scale, 1.0)  # no requantization after the cut: the same forward


def test_shape_arithmetic_global_pooling_and_resize_match_onnx_runtime(tmp_path: Path) -> None:
    """The ops the zoo's DeepLab and HRNet exports add (ASPP's ReduceMean, Resize to sizes computed from
    Shape(start..end)) computed as ONNX Runtime computes them."""
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array((0.3 * rng.standard_normal((3, 1, 3, 3))).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([-1, -2], np.int64), "axes"),
        numpy_helper.from_array(np.array([16, 20], np.int64), "size_hw"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["A"]),
        helper.make_node("ReduceMean", ["A", "axes"], ["pooled"], keepdims=1),
        helper.make_node("Add", ["A", "pooled"], ["sum"]),
        helper.make_node("Shape", ["sum"], ["nc"], start=0, end=2),
        helper.make_node("Concat", ["nc", "size_hw"], ["sizes"], axis=0),
        helper.make_node(
            "Resize", ["sum", "", "", "sizes"], ["logits"], mode="linear", coordinate_transformation_mode="half_pixel"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "ops",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 10])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 16, 20])],
        inits,
    )
    path = tmp_path / "ops.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    images = rng.standard_normal((2, 1, 8, 10)).astype(np.float32)
    drift, scale = simulation_vs_session(OnnxFakeQuant(path).eval(), path, images, threads=1)
    assert scale > 0 and drift <= 1e-5 * scale


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_transformer_and_mobile_ops_match_onnx_runtime(tmp_path: Path, approximate: str) -> None:
    """The ops SegFormer's export adds (LayerNormalization, MatMul, Softmax, Gelu over (B, N, C) tokens)
    and MobileNetV3's hard-sigmoid gate, computed as ONNX Runtime computes them."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array((0.3 * rng.standard_normal((4, 1, 2, 2))).astype(np.float32), "embed"),
        numpy_helper.from_array(np.array([1, 4, -1], np.int64), "to_rows"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "proj"),
        numpy_helper.from_array(np.array([1, 4, 4, 5], np.int64), "to_grid"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "embed"], ["conv"], strides=[2, 2]),  # (1, 4, 4, 5)
        helper.make_node("Reshape", ["conv", "to_rows"], ["rows"]),
        helper.make_node("Transpose", ["rows"], ["tokens"], perm=[0, 2, 1]),  # (1, 20, 4)
        helper.make_node("LayerNormalization", ["tokens", "gamma", "beta"], ["normed"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["normed", "proj"], ["projected"]),
        helper.make_node("Gelu", ["projected"], ["activated"], approximate=approximate),
        helper.make_node("Softmax", ["activated"], ["weights"], axis=-1),
        helper.make_node("HardSigmoid", ["activated"], ["gate"], alpha=0.25, beta=0.4),
        helper.make_node("Mul", ["weights", "gate"], ["gated"]),
        helper.make_node("Transpose", ["gated"], ["channels"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["channels", "to_grid"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ops",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 10])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 4, 5])],
        inits,
    )
    path = tmp_path / "ops.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    images = rng.standard_normal((2, 1, 8, 10)).astype(np.float32)
    drift, scale = simulation_vs_session(OnnxFakeQuant(path).eval(), path, images, threads=1)
    assert scale > 0 and drift <= 1e-5 * scale


def test_a_slice_from_int64_min_is_clamped_to_the_axis_without_a_warning(tmp_path: Path) -> None:
    """The dynamo exporter writes `x[..., :-2]` as Slice(starts=INT64_MIN): ONNX clamps it to the axis."""
    import warnings

    inits = [
        numpy_helper.from_array(np.array([np.iinfo(np.int64).min], np.int64), "starts"),
        numpy_helper.from_array(np.array([-2], np.int64), "ends"),
        numpy_helper.from_array(np.array([3], np.int64), "axes"),
    ]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["logits"])],
        "slice",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 10])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        inits,
    )
    path = tmp_path / "slice.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    images = np.random.default_rng(4).standard_normal((2, 1, 8, 10)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drift, scale = simulation_vs_session(OnnxFakeQuant(path).eval(), path, images, threads=1)
    assert scale > 0 and drift == 0.0
