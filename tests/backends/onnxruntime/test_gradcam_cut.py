"""Grad-CAM by finite differences on ONNX Runtime graphs cut at the feature tensor (fp32 and QDQ int8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from backends.onnxruntime.coverage import fused_coverage
from backends.onnxruntime.fp32 import MODEL_FILE as FP32_FILE
from backends.onnxruntime.fp32 import OrtFp32Backend
from backends.onnxruntime.gradcam_cut import OnnxFeatureSplitter, onnx_feature_split
from backends.onnxruntime.qdq_int8 import MODEL_FILE as INT8_FILE
from backends.onnxruntime.qdq_int8 import OrtQdqInt8Backend
from bench.backend import Artifact, GradcamRequest
from bench.gradcam.divergence import compare_maps
from bench.gradcam.method import autograd_alphas, finite_difference_alphas, gradcam_autograd
from bench.gradcam.split import SplitUnavailable
from bench.models import create_model
from tests.helpers import TokenNet, int8_sums_saturate, needs_exact_int8_sums, prepare

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

LAYER = "decoder.3"


def _prepare(backend, model, calibration, folder: Path, size: int = 32, **options) -> Artifact:
    assert calibration.shape[1:] == (1, size, size)
    return prepare(backend, folder, model, calibration, options=options)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """Random-init U-Net (seed 0), its fp32 and QDQ int8 artifacts, and two 1x32x32 images."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    images = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    fp32 = _prepare(OrtFp32Backend(), model, calibration, tmp_path_factory.mktemp("ort"))
    int8 = _prepare(OrtQdqInt8Backend(), model, calibration, tmp_path_factory.mktemp("qdq"))
    return model, calibration, images, fp32, int8


def _outputs(path: Path) -> set[str]:
    return {o for node in onnx.load(str(path)).graph.node for o in node.output}


def test_layer_mapping_is_stored_and_its_tensor_survives_quantization(unet) -> None:
    _, _, _, fp32, int8 = unet
    tensor = fp32.meta["layer_tensors"][LAYER]
    assert int8.meta["layer_tensors"][LAYER] == tensor
    graph = onnx.load(str(fp32.directory / FP32_FILE)).graph
    assert [n.op_type for n in graph.node if tensor in n.output] == ["Relu"]  # decoder.3's last op: its ReLU
    quantized = onnx.load(str(int8.directory / INT8_FILE)).graph
    readers = [n.op_type for n in quantized.node if tensor in n.input]
    assert tensor in _outputs(int8.directory / INT8_FILE) and readers == ["QuantizeLinear"]
    assert {"encoder.3", "bottleneck", "head"} <= set(fp32.meta["layer_tensors"])


def test_float_split_reproduces_the_model_and_its_alphas_match_autograd(unet) -> None:
    model, _, images, fp32, _ = unet
    tensor = fp32.meta["layer_tensors"][LAYER]
    split = onnx_feature_split(fp32.directory / FP32_FILE, tensor, images[:1])
    with torch.no_grad():
        expected = model(torch.from_numpy(images[:1])).numpy()
    np.testing.assert_allclose(split.head_shifted(np.array([-1])), expected, atol=1e-5)
    assert split.meta["max_abs_vs_model"] <= 1e-5
    features, alphas = autograd_alphas(model, torch.from_numpy(images[:1]), [LAYER], (0, 1))
    np.testing.assert_allclose(split.features, features[LAYER][0].numpy(), atol=1e-5)
    reference = alphas[LAYER][0].numpy()
    fd = finite_difference_alphas(split, (0, 1))
    np.testing.assert_allclose(fd, reference, rtol=1e-2, atol=1e-2 * np.abs(reference).max())


def test_int8_split_cuts_at_codes_and_its_head_is_the_model_exactly(unet) -> None:
    _, _, images, _, int8 = unet
    path = int8.directory / INT8_FILE
    splitter = OnnxFeatureSplitter(path, int8.meta["layer_tensors"][LAYER], steps=4)
    assert splitter.cut.endswith("QuantizeLinear_Output") and splitter.quant is not None
    for i in range(2):
        split = splitter.split(images[i : i + 1])
        full = splitter.full_logits(images[i : i + 1])
        np.testing.assert_array_equal(split.head_shifted(np.array([-1])), full)
        np.testing.assert_array_equal(split.head_shifted(np.array([-1, -1, -1])), np.repeat(full, 3, axis=0))
    # ONNX Runtime fuses the head's DQ -> Conv -> Q into an int8 kernel, as in the full graph
    head_file = path.parent / "head.onnx"
    onnx.save(splitter.head_model, str(head_file))
    from backends.onnxruntime.coverage import optimized_coverage

    assert "QLinearConv" in optimized_coverage(head_file).int8
    assert fused_coverage(splitter.head_model).int8 == {}  # before ORT's fusions it is all QDQ + float ops


def test_shift_moves_codes_by_exactly_steps_unless_clipped(unet) -> None:
    _, _, images, _, int8 = unet
    split = onnx_feature_split(int8.directory / INT8_FILE, int8.meta["layer_tensors"][LAYER], images[:1], steps=6)
    codes, moved = split.meta["codes"].astype(int), split.meta["shifted_codes"].astype(int)
    assert codes.dtype == moved.dtype and split.meta["codes"].dtype == np.uint8
    room = codes <= 255 - 6
    assert np.all(moved[room] - codes[room] == 6) and np.all(moved[~room] == 255)
    assert split.meta["clipped"] == pytest.approx(float(np.mean(~room)))
    scale = split.step[0] / 6
    np.testing.assert_allclose(split.step, 6 * scale)
    np.testing.assert_allclose(split.features, codes * scale, rtol=1e-6)  # ReLU output: zero point 0
    # the head really sees the shifted codes: moving channel k changes the logits
    shifted = split.head_shifted(np.array([-1, 0, 1]))
    assert not np.array_equal(shifted[1], shifted[0]) and not np.array_equal(shifted[2], shifted[0])


def test_deep_layer_split_feeds_skip_connections_as_side_codes(unet) -> None:
    _, _, images, _, int8 = unet
    splitter = OnnxFeatureSplitter(int8.directory / INT8_FILE, int8.meta["layer_tensors"]["encoder.3"])
    assert len(splitter.sides) == 3 and all(s.endswith("QuantizeLinear_Output") for s in splitter.sides)
    split = splitter.split(images[:1])
    np.testing.assert_array_equal(
        split.head_shifted(np.array([-1, -1])), np.repeat(splitter.full_logits(images[:1]), 2, axis=0)
    )


# S8S8 on an AVX2-only EPYC: the cut head was 0.0204 off the whole graph (U8S8 stayed exact there)
@pytest.mark.parametrize("preset", [pytest.param("tensorrt", marks=needs_exact_int8_sums)])
def test_symmetric_int8_codes_split_exactly(unet, tmp_path, preset) -> None:
    model, calibration, images, _, _ = unet
    artifact = _prepare(OrtQdqInt8Backend(), model, calibration, tmp_path, preset=preset)
    split = onnx_feature_split(artifact.directory / INT8_FILE, artifact.meta["layer_tensors"][LAYER], images[:1])
    assert split.meta["codes"].dtype == np.int8 and split.meta["max_abs_vs_model"] == 0.0
    assert split.meta["shifted_codes"].max() <= 127


def test_backend_gradcam_maps_and_notes(unet) -> None:
    model, calibration, images, fp32, int8 = unet
    request = GradcamRequest(
        model=model, images=images, layers=(LAYER, "decoder.3.2"), classes=(0, 1), calibration=calibration, steps=4
    )
    float_all = OrtFp32Backend().gradcam(fp32, request)
    int8_all = OrtQdqInt8Backend().gradcam(int8, request)
    steps = [("finite-difference", s, "onnx") for s in (4, 2, 8)]  # the primary step, then the floor steps
    assert [(m.method, m.step, m.cut) for m in float_all] == steps  # the float graph has nothing to fake-quantize
    assert [(m.method, m.step, m.cut) for m in int8_all] == [*steps, ("fake-quant", None, "")]
    assert all(m.vs_deployed_max_abs == 0.0 for m in [*float_all, *int8_all[:3]])
    simulated = int8_all[3]  # the QDQ graph's fake-quant simulation, close to ONNX Runtime's own session
    assert simulated.vs_deployed_scale and simulated.vs_deployed_max_abs < 0.1 * simulated.vs_deployed_scale
    assert compare_maps(int8_all[0].maps[LAYER], simulated.maps[LAYER])[1].gradcam_pearson > 0.5
    float_maps, int8_maps = float_all[0], int8_all[0]
    reference = gradcam_autograd(model, images, [LAYER], (0, 1))[LAYER]
    for result in (float_maps, int8_maps):
        assert result.method == "finite-difference" and result.seconds_per_image > 0
        cams = result.maps[LAYER]
        assert cams.shape == (2, 2, 32, 32) and cams.dtype == np.float32
        assert np.isfinite(cams).all() and (cams >= 0).all()
    np.testing.assert_allclose(float_maps.maps[LAYER], reference, rtol=2e-2, atol=2e-2 * reference.max())
    # the Conv inside decoder.3 absorbed its ReLU when quantized: that tensor is gone, and the note says so
    assert "decoder.3.2" in float_maps.maps and "decoder.3.2" not in int8_maps.maps
    assert "decoder.3.2: not split" in int8_maps.notes


def test_a_float_graph_is_explained_by_finite_differences_whatever_method_is_asked(unet) -> None:
    model, calibration, images, fp32, _ = unet
    request = GradcamRequest(
        model=model,
        images=images[:1],
        layers=(LAYER,),
        classes=(1,),
        calibration=calibration,
        methods=("fake-quant",),
        floor_steps=(),
    )
    (found,) = OrtFp32Backend().gradcam(fp32, request)  # its maps are the run's check of the ONNX cut
    assert found.method == "finite-difference" and LAYER in found.maps


def test_unknown_layer_is_a_note_and_no_maps(unet) -> None:
    model, calibration, images, _, int8 = unet
    request = GradcamRequest(model=model, images=images[:1], layers=("nope",), classes=(1,), calibration=calibration)
    result = OrtQdqInt8Backend().gradcam(int8, request)[0]
    assert result.maps == {} and "no layer could be split" in result.notes and "nope" in result.notes


def test_split_rejects_a_tensor_that_is_not_in_the_graph(unet) -> None:
    _, _, images, _, int8 = unet
    with pytest.raises(SplitUnavailable, match="not in"):
        onnx_feature_split(int8.directory / INT8_FILE, "no_such_tensor", images[:1])


def test_a_token_layer_is_cut_at_its_tokens_and_matches_autograd(tmp_path) -> None:
    """A layer that outputs (1, N, C) tokens: shifted on its grid (C, h, w), fed to the head as tokens, in
    the float graph and at the QDQ graph's codes."""
    model = TokenNet().eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 16, 20)).astype(np.float32)
    images = rng.standard_normal((2, 1, 16, 20)).astype(np.float32)
    fp32 = prepare(OrtFp32Backend(), _mkdir(tmp_path / "fp32"), model, calibration, num_classes=3)
    int8 = prepare(OrtQdqInt8Backend(), _mkdir(tmp_path / "int8"), model, calibration, num_classes=3)
    split = onnx_feature_split(int8.directory / INT8_FILE, int8.meta["layer_tensors"]["mix"], images[:1])
    assert split.features.shape == (5, 8, 10) and split.meta["codes"].shape == (5, 8, 10)  # 80 tokens, stride 2
    assert split.meta["max_abs_vs_model"] == 0.0  # the head, fed tokens, is the deployed graph exactly
    request = GradcamRequest(
        model=model, images=images, layers=("mix",), classes=(0, 1, 2), calibration=calibration, floor_steps=()
    )
    reference = gradcam_autograd(model, images, ["mix"], (0, 1, 2))["mix"]
    (float_maps,) = OrtFp32Backend().gradcam(fp32, request)
    int8_maps = OrtQdqInt8Backend().gradcam(int8, request)[0]
    assert "float linear" in float_maps.notes and "uint8 codes of linear" in int8_maps.notes
    assert compare_maps(reference, float_maps.maps["mix"])[1].gradcam_pearson > 0.999
    # 0.961 on an AVX2-only EPYC, whose int8 kernels sum products in saturating int16 (tests/helpers.py)
    bound = 0.95 if int8_sums_saturate() else 0.99
    assert compare_maps(reference, int8_maps.maps["mix"])[1].gradcam_pearson > bound


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def trained_unet(tmp_path_factory, trained_unet_model):
    from bench.data.suite import get_suite

    suite = get_suite("synthetic-nuclei")
    model = trained_unet_model
    calibration = suite.normalize(suite.load("calibration").images[:8])
    images = suite.normalize(suite.load("evaluation").images[:4])
    size = images.shape[-1]
    artifact = _prepare(OrtQdqInt8Backend(), model.eval(), calibration, tmp_path_factory.mktemp("trained"), size=size)
    return model, calibration, images, artifact


@pytest.mark.slow
def test_int8_maps_of_a_trained_unet_agree_with_the_float_reference(trained_unet) -> None:
    model, calibration, images, artifact = trained_unet
    request = GradcamRequest(model=model, images=images, layers=(LAYER,), classes=(1,), calibration=calibration)
    found = OrtQdqInt8Backend().gradcam(artifact, request)
    result, simulated = found[0], found[-1]
    reference = gradcam_autograd(model, images, [LAYER], (1,))[LAYER]
    # the second method on the same trained graph: fake-quant autograd through its simulation
    assert simulated.method == "fake-quant" and compare_maps(reference, simulated.maps[LAYER])[1].gradcam_pearson > 0.95
    cams = result.maps[LAYER]
    assert np.isfinite(cams).all() and (cams >= 0).all() and cams.max() > 0
    pearson = compare_maps(reference, cams)[1].gradcam_pearson
    assert pearson > 0.5
