"""Grad-CAM by finite differences on OpenVINO IRs cut with OpenVINO's model API (fp32 and NNCF int8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from backends.openvino.backend import OpenVinoFp32Backend, OpenVinoInt8Backend  # noqa: E402
from backends.openvino.gradcam_cut import HEAD_RTOL, INT8_HEAD_RTOL, OpenVinoFeatureSplitter  # noqa: E402
from backends.openvino.runtime import XML_FILE  # noqa: E402
from bench.backend import GradcamRequest  # noqa: E402
from bench.gradcam.method import autograd_alphas, finite_difference_alphas, gradcam_autograd  # noqa: E402
from bench.gradcam.split import SplitUnavailable  # noqa: E402
from bench.models import create_model  # noqa: E402
from tests.helpers import TokenNet, int8_sums_saturate, prepare  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

LAYER = "decoder.3"


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    images = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    fp32 = prepare(OpenVinoFp32Backend(), tmp_path_factory.mktemp("ov"), model, calibration)
    int8 = prepare(OpenVinoInt8Backend(), tmp_path_factory.mktemp("ov-int8"), model, calibration)
    return model, calibration, images, fp32, int8


def test_float_cut_reproduces_the_model_and_its_alphas_match_autograd(unet) -> None:
    model, _, images, fp32, _ = unet
    splitter = OpenVinoFeatureSplitter(fp32.directory / XML_FILE, fp32.meta["layer_tensors"][LAYER])
    split = splitter.split(images[:1])
    with torch.no_grad():
        expected = model(torch.from_numpy(images[:1])).numpy()
    np.testing.assert_allclose(split.head_shifted(np.array([-1])), expected, atol=1e-5)
    features, alphas = autograd_alphas(model, torch.from_numpy(images[:1]), [LAYER], (0, 1))
    np.testing.assert_allclose(split.features, features[LAYER][0].numpy(), atol=1e-5)
    reference = alphas[LAYER][0].numpy()
    fd = finite_difference_alphas(split, (0, 1))
    np.testing.assert_allclose(fd, reference, rtol=1e-2, atol=1e-2 * np.abs(reference).max())


def test_deep_cut_feeds_skip_connections_as_side_inputs(unet) -> None:
    _, _, images, fp32, int8 = unet
    # the int8 head compiled alone was 0.0124 off the whole graph on an AVX2-only EPYC (saturating int8 sums)
    for artifact in (fp32,) if int8_sums_saturate() else (fp32, int8):
        splitter = OpenVinoFeatureSplitter(artifact.directory / XML_FILE, artifact.meta["layer_tensors"]["bottleneck"])
        split = splitter.split(images[:1])
        assert len(splitter.sides) == 4  # the four skip connections of the encoder
        assert split.meta["max_abs_vs_model"] <= 1e-4


def test_int8_cut_is_in_front_of_the_fake_quantize_and_moves_whole_steps(unet) -> None:
    _, _, images, _, int8 = unet
    splitter = OpenVinoFeatureSplitter(int8.directory / XML_FILE, int8.meta["layer_tensors"][LAYER], steps=4)
    split = splitter.split(images[:1])
    assert "256-level FakeQuantize grid" in split.meta["kind"]
    assert split.meta["max_abs_vs_model"] <= 1e-4 * np.abs(splitter.full_logits(images[:1])).max()
    q = splitter.quant
    out_step = float(np.ravel((q["out_high"] - q["out_low"]) / (q["levels"] - 1))[0])
    np.testing.assert_allclose(split.step, 4 * out_step)
    codes = (split.features - float(np.ravel(q["out_low"])[0])) / out_step
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # the features lie on the quantizer's grid
    shifted = split.head_shifted(np.array([-1, 0]))
    assert not np.array_equal(shifted[0], shifted[1])  # four steps of channel 0 move the logits


def test_backend_gradcam_maps_agree_with_autograd_on_the_float_ir(unet) -> None:
    model, calibration, images, fp32, int8 = unet
    request = GradcamRequest(
        model=model, images=images, layers=(LAYER, "nope"), classes=(0, 1), calibration=calibration
    )
    float_all = OpenVinoFp32Backend().gradcam(fp32, request)
    int8_all = OpenVinoInt8Backend().gradcam(int8, request)
    assert [(m.method, m.step, m.cut) for m in float_all] == [("finite-difference", s, "openvino") for s in (4, 2, 8)]
    reference = gradcam_autograd(model, images, [LAYER], (0, 1))[LAYER]
    np.testing.assert_allclose(float_all[0].maps[LAYER], reference, rtol=2e-2, atol=2e-2 * reference.max())
    cams = int8_all[0].maps[LAYER]
    assert cams.shape == (2, 2, 32, 32) and np.isfinite(cams).all() and (cams >= 0).all()
    assert "nope: not split (the OpenVINO model has no tensor named 'nope')" in int8_all[0].notes
    drift, scale = int8_all[0].vs_deployed_max_abs, int8_all[0].vs_deployed_scale
    assert drift is not None and scale and drift <= 1e-4 * scale  # the compiled head against the compiled model


def test_a_bad_step_is_refused(unet) -> None:
    _, _, _, fp32, _ = unet
    with pytest.raises(SplitUnavailable, match="positive whole number"):
        OpenVinoFeatureSplitter(fp32.directory / XML_FILE, fp32.meta["layer_tensors"][LAYER], steps=0)


class TwoBranch(nn.Module):
    """LR-ASPP's head in small: a high-level branch (`gate`, upsampled and classified) added to a classifier
    of the low-level features. OpenVINO's compiled int8 model fuses the sum into one convolution; a head
    compiled on its own fuses it into the other, and requantizes the sum one code apart here and there."""

    def __init__(self) -> None:
        super().__init__()
        self.low = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU())
        self.high = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.gate = nn.Sequential(nn.Conv2d(16, 16, 1), nn.ReLU())
        self.high_classifier = nn.Conv2d(16, 2, 1)
        self.low_classifier = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low(x)
        up = F.interpolate(self.gate(self.high(low)), size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.low_classifier(low) + self.high_classifier(up)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_an_int8_head_that_requantizes_a_fused_sum_apart_is_within_the_simulation_tolerance(tmp_path) -> None:
    torch.manual_seed(0)
    calibration = np.random.default_rng(0).standard_normal((16, 1, 32, 32)).astype(np.float32)
    int8 = prepare(OpenVinoInt8Backend(), tmp_path, TwoBranch().eval(), calibration)
    splitter = OpenVinoFeatureSplitter(int8.directory / XML_FILE, int8.meta["layer_tensors"]["gate"])
    split = splitter.split(calibration[:1])  # raised with the fp32 tolerance: 1% of max |logit| apart
    relative = split.meta["max_abs_vs_model"] / split.meta["logits_scale"]
    assert splitter.int8 and HEAD_RTOL < relative <= INT8_HEAD_RTOL
    assert len(splitter.sides) == 1  # the low features' classifier output, held fixed


def test_a_compiled_model_that_does_not_reproduce_itself_says_so(unet, monkeypatch) -> None:
    """Two compilations of one IR, two answers (OpenVINO 2026.4's int8 SegFormer): no head can be checked."""
    import backends.openvino.runtime as runtime

    _, _, images, fp32, _ = unet
    splitter = OpenVinoFeatureSplitter(fp32.directory / XML_FILE, fp32.meta["layer_tensors"][LAYER])
    splitter._check_reproducible(images[:1])  # the float IR: the same logits from every compilation
    compile_model = runtime.compile_model

    def unstable(model, threads, precision, *args):
        compiled = compile_model(model, threads, precision, *args)
        return lambda x: [np.asarray(compiled(x)[0]) + 1.0]

    monkeypatch.setattr(runtime, "compile_model", unstable)
    with pytest.raises(
        SplitUnavailable, match=r"does not reproduce itself: two compilations give logits up to 1 apart"
    ):
        splitter._check_reproducible(images[:1])


def test_a_token_layer_is_cut_at_its_tokens_and_matches_autograd(tmp_path) -> None:
    model = TokenNet().eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 16, 20)).astype(np.float32)
    images = rng.standard_normal((2, 1, 16, 20)).astype(np.float32)
    fp32 = prepare(OpenVinoFp32Backend(), tmp_path, model, calibration, num_classes=3)
    splitter = OpenVinoFeatureSplitter(fp32.directory / XML_FILE, fp32.meta["layer_tensors"]["mix"])
    split = splitter.split(images[:1])
    assert splitter.tokens and split.features.shape == (5, 8, 10)  # (1, 80, 5) tokens on their 8 x 10 grid
    request = GradcamRequest(
        model=model, images=images, layers=("mix",), classes=(0, 1, 2), calibration=calibration, floor_steps=()
    )
    (found,) = OpenVinoFp32Backend().gradcam(fp32, request)
    reference = gradcam_autograd(model, images, ["mix"], (0, 1, 2))["mix"]
    np.testing.assert_allclose(found.maps["mix"], reference, rtol=2e-2, atol=2e-2 * reference.max())


@pytest.fixture(scope="module")
def enet(tmp_path_factory):
    """ENet's layout (max-pool indices unpooled twice in the decoder, PReLU, asymmetric and dilated convs):
    a cut in the decoder reads the unpool's flat indices and its shape arithmetic, which no batch can take."""
    from tests.bench.models.slow_int8_fixture import enet_mini

    torch.manual_seed(0)
    model = enet_mini(3, 11).eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
    images = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    kw = {"model_name": "enet_mini", "num_classes": 11}
    fp32 = prepare(OpenVinoFp32Backend(), tmp_path_factory.mktemp("enet"), model, calibration, **kw)
    int8 = prepare(OpenVinoInt8Backend(), tmp_path_factory.mktemp("enet-int8"), model, calibration, **kw)
    return model, images, fp32, int8


@pytest.mark.slow  # exports and quantizes ENet's layout: 30 s and more on 2 shared cores
@pytest.mark.parametrize("layer", ["stage3", "stage2"])  # between the two unpools, and before both
def test_a_cut_before_max_unpools_runs_its_head_row_by_row_and_matches_autograd(enet, layer) -> None:
    model, images, fp32, _ = enet
    splitter = OpenVinoFeatureSplitter(fp32.directory / XML_FILE, fp32.meta["layer_tensors"][layer])
    split = splitter.split(images)
    assert splitter.batched is False and "head run one row at a time" in split.meta["kind"]
    assert split.meta["max_abs_vs_model"] <= 1e-4 * split.meta["logits_scale"]
    classes = (8, 9)
    features, alphas = autograd_alphas(model, torch.from_numpy(images), [layer], classes)
    np.testing.assert_allclose(split.features, features[layer][0].numpy(), atol=1e-4)
    reference = alphas[layer][0].numpy()
    fd = finite_difference_alphas(split, classes)
    np.testing.assert_allclose(fd, reference, rtol=2e-2, atol=2e-2 * np.abs(reference).max())


@pytest.mark.slow
def test_the_int8_enet_head_reproduces_the_model_and_moves_on_its_grid(enet) -> None:
    from backends.openvino.gradcam_cut import _batch_first

    _, images, _, int8 = enet
    splitter = OpenVinoFeatureSplitter(int8.directory / XML_FILE, int8.meta["layer_tensors"]["stage3"])
    assert not _batch_first(splitter.body_model)  # the unpool's flat indices: (N*C*h*w, 1), not (N, ...)
    split = splitter.split(images)
    assert "256-level FakeQuantize grid" in split.meta["kind"] and splitter.batched is False
    assert split.meta["max_abs_vs_model"] <= 1e-4 * split.meta["logits_scale"]
    shifted = split.head_shifted(np.array([-1, 0, -1]))
    np.testing.assert_array_equal(shifted[0], shifted[2])
    assert not np.array_equal(shifted[0], shifted[1])  # four steps of channel 0 move the logits
