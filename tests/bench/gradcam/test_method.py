"""Grad-CAM by autograd and by finite differences: known answers, agreement, sanity checks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.eager import TorchEagerBackend
from bench.backend import Artifact, GradcamRequest
from bench.errors import UsageError
from bench.gradcam.divergence import compare_maps
from bench.gradcam.method import (
    autograd_alphas,
    cam_from_alphas,
    class_scores,
    finite_difference_alphas,
    finite_difference_cams,
    gradcam_autograd,
    normalize_for_display,
    torch_feature_split,
)
from bench.models import create_model
from tests.helpers import prepare

LAYER = "decoder.3"


class ConstantFeatures(nn.Module):
    """Emits fixed features A (K, h, w) for every image: the layer Grad-CAM differentiates against."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("features", features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features.expand(x.shape[0], *self.features.shape).clone()


class LinearHead(nn.Module):
    """Features -> 1x1 conv (weights W, C x K) -> nearest upsampling x2: every feature pixel feeds
    exactly 4 output pixels, so with a plain-sum class score alpha_k^c = W_ck |M| / N, |M| = 4 N."""

    def __init__(self, features: torch.Tensor, weight: torch.Tensor) -> None:
        super().__init__()
        self.source = ConstantFeatures(features)
        self.head = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=True).to(features.dtype)
        with torch.no_grad():
            self.head.weight.copy_(weight[:, :, None, None])
            self.head.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.source(x)), scale_factor=2, mode="nearest")


@pytest.fixture()
def known_head() -> tuple[LinearHead, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    features = torch.rand(3, 5, 7, generator=gen, dtype=torch.float64)
    weight = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    return LinearHead(features, weight).eval(), features, weight


@pytest.fixture(scope="module")
def unet64() -> nn.Module:
    torch.manual_seed(0)
    return create_model("unet", 1, 2).eval().double()


def test_known_answer_head_autograd(known_head) -> None:
    model, features, weight = known_head
    images = torch.zeros(1, 1, 10, 14, dtype=torch.float64)
    _, alphas = autograd_alphas(model, images, ["source"], [0, 1], reduction="sum")
    outputs, n = 10 * 14, 5 * 7
    np.testing.assert_allclose(alphas["source"][0].numpy(), weight.numpy() * outputs / n, rtol=1e-12)
    maps = gradcam_autograd(model, images.numpy(), ["source"], [0, 1], dtype=torch.float64, reduction="sum")
    expected = np.maximum(np.einsum("ck,khw->chw", weight.numpy() * outputs / n, features.numpy()), 0)
    up = F.interpolate(torch.from_numpy(expected)[None], size=(10, 14), mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(maps["source"][0], up.numpy(), rtol=1e-5, atol=1e-7)


def test_known_answer_head_finite_differences(known_head) -> None:
    model, features, weight = known_head
    split = torch_feature_split(model, torch.zeros(1, 1, 10, 14, dtype=torch.float64), "source", step=0.5)
    np.testing.assert_allclose(split.features, features.numpy())
    alphas = finite_difference_alphas(split, [0, 1], chunk=2, reduction="sum")  # one channel per call
    np.testing.assert_allclose(alphas, weight.numpy() * (10 * 14) / (5 * 7), rtol=1e-9)
    cams = finite_difference_cams(split, [1, 0], out_size=(5, 7), reduction="sum")
    expected = np.maximum(np.einsum("ck,khw->chw", alphas[::-1], features.numpy()), 0)
    np.testing.assert_allclose(cams, expected, rtol=1e-6, atol=1e-9)


def test_cam_from_alphas_relu_and_upsampling() -> None:
    features = np.ones((2, 4, 4))
    cams = cam_from_alphas(features, np.array([[1.0, 2.0], [-1.0, -2.0]]), out_size=(8, 12))
    assert cams.shape == (2, 8, 12) and cams.dtype == np.float32
    np.testing.assert_allclose(cams[0], 3.0)  # a constant map stays constant when upsampled
    np.testing.assert_array_equal(cams[1], 0.0)  # ReLU of a negative sum
    with pytest.raises(UsageError, match="alphas"):
        cam_from_alphas(features, np.ones((2, 3)), (4, 4))


def test_class_scores_softmax_and_sigmoid() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5))
    scores = class_scores(logits, [0, 1, 2])
    assert scores.shape == (2, 3) and scores.dtype == np.float64
    np.testing.assert_allclose(scores.sum(axis=1), 20.0)  # probabilities sum to 1 per pixel
    sigmoid = class_scores(logits[:, :1], [1, 0])
    np.testing.assert_allclose(sigmoid[:, 0], (1 / (1 + np.exp(-logits[:, 0]))).sum(axis=(1, 2)))
    np.testing.assert_allclose(sigmoid.sum(axis=1), 20.0)
    np.testing.assert_allclose(class_scores(logits, [2], reduction="sum")[:, 0], logits[:, 2].sum(axis=(1, 2)))
    with pytest.raises(UsageError, match="out of range"):
        class_scores(logits, [3])
    with pytest.raises(UsageError, match="reduction"):
        class_scores(logits, [0], reduction="mean")


def test_finite_differences_equal_autograd_in_float64(unet64: nn.Module) -> None:
    image = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, 32, 32)))
    _, alphas = autograd_alphas(unet64, image, [LAYER], [0, 1])
    split = torch_feature_split(unet64, image, LAYER, step=1e-6)
    fd = finite_difference_alphas(split, [0, 1])
    ag = alphas[LAYER][0].numpy()
    assert np.abs(ag).max() > 1e-3  # a real gradient, not two zero vectors agreeing
    np.testing.assert_allclose(fd, ag, rtol=1e-3, atol=1e-6 * np.abs(ag).max())
    maps = gradcam_autograd(unet64, image.numpy(), [LAYER], [0, 1], dtype=torch.float64)[LAYER][0]
    np.testing.assert_allclose(finite_difference_cams(split, [0, 1], (32, 32)), maps, rtol=1e-3, atol=1e-6 * maps.max())


def test_two_class_maps_are_complementary(unet64: nn.Module) -> None:
    """With two softmax classes y_0 = HW - y_1, so alpha^0 = -alpha^1: the maps differ and, before
    upsampling, never overlap."""
    image = np.random.default_rng(1).normal(size=(1, 1, 32, 32))
    maps = gradcam_autograd(unet64, image, [LAYER], [0, 1], dtype=torch.float64)[LAYER][0]
    assert maps[0].max() > 0 and maps[1].max() > 0
    assert np.all(maps[0] * maps[1] == 0)
    assert compare_maps(maps[None, :1], maps[None, 1:])[1].gradcam_top10_iou == 0.0


def test_maps_of_three_classes_differ() -> None:
    torch.manual_seed(0)
    model = create_model("unet", 1, 3).eval()
    maps = gradcam_autograd(
        model, np.random.default_rng(2).normal(size=(2, 1, 32, 32)).astype(np.float32), [LAYER], [0, 1, 2]
    )[LAYER]
    assert maps.shape == (2, 3, 32, 32)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert compare_maps(maps[:, a : a + 1], maps[:, b : b + 1])[1].gradcam_spearman < 0.9


def test_batching_and_multiple_layers_do_not_change_maps(unet64: nn.Module) -> None:
    images = np.random.default_rng(3).normal(size=(3, 1, 32, 32))
    together = gradcam_autograd(unet64, images, [LAYER, "decoder.2"], [1], dtype=torch.float64, batch_size=3)
    alone = gradcam_autograd(unet64, images, [LAYER], [1], dtype=torch.float64, batch_size=1)
    assert together["decoder.2"].shape == (3, 1, 32, 32)
    np.testing.assert_allclose(together[LAYER], alone[LAYER], rtol=1e-6, atol=1e-9)
    assert not np.allclose(together[LAYER], together["decoder.2"])


def test_hooked_layer_followed_by_inplace_relu(unet64: nn.Module) -> None:
    """decoder.3.2 is a conv whose output a ReLU(inplace=True) overwrites: A must be the conv output
    (negative values included), and FD through the same layer must agree."""
    image = torch.from_numpy(np.random.default_rng(4).normal(size=(1, 1, 32, 32)))
    features, alphas = autograd_alphas(unet64, image, ["decoder.3.2"], [1])
    assert features["decoder.3.2"].min() < 0
    split = torch_feature_split(unet64, image, "decoder.3.2", step=1e-6)
    np.testing.assert_allclose(
        finite_difference_alphas(split, [1]),
        alphas["decoder.3.2"][0].numpy(),
        rtol=1e-3,
        atol=1e-6 * float(alphas["decoder.3.2"].abs().max()),
    )


def test_randomized_head_lowers_rank_correlation(unet64: nn.Module) -> None:
    """Model-randomization sanity check (Adebayo et al. 2018): re-drawing the head's weights must change
    the explanation, while a 1% perturbation of them must not."""
    images = np.random.default_rng(5).normal(size=(2, 1, 32, 32))
    reference = gradcam_autograd(unet64, images, [LAYER], [0, 1], dtype=torch.float64)[LAYER]
    torch.manual_seed(11)
    nudged, randomized = copy.deepcopy(unet64), copy.deepcopy(unet64)
    with torch.no_grad():
        nudged.head.weight.mul_(1 + 0.01 * torch.randn_like(nudged.head.weight))
        randomized.head.reset_parameters()
    near = compare_maps(reference, gradcam_autograd(nudged, images, [LAYER], [0, 1], dtype=torch.float64)[LAYER])[1]
    far = compare_maps(reference, gradcam_autograd(randomized, images, [LAYER], [0, 1], dtype=torch.float64)[LAYER])[1]
    assert near.gradcam_spearman > 0.95
    assert far.gradcam_spearman < near.gradcam_spearman - 0.3


def test_reduced_precision_runs_in_that_precision() -> None:
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    images = np.random.default_rng(6).normal(size=(1, 1, 32, 32)).astype(np.float32)
    fp32 = gradcam_autograd(model, images, [LAYER], [1])[LAYER]
    bf16 = gradcam_autograd(model, images, [LAYER], [1], dtype=torch.bfloat16)[LAYER]
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert not np.array_equal(fp32, bf16)  # really computed in bf16
    assert compare_maps(fp32, bf16)[1].gradcam_pearson > 0.8
    assert next(model.parameters()).dtype == torch.float32  # the caller's model was not cast


def test_unknown_layer_lists_valid_names(unet64: nn.Module) -> None:
    with pytest.raises(UsageError, match="'decoder.9'.*valid layers include: .*head"):
        gradcam_autograd(unet64, np.zeros((1, 1, 32, 32)), ["decoder.9"], [1], dtype=torch.float64)


def test_shared_module_is_refused(unet64: nn.Module) -> None:
    with pytest.raises(UsageError, match="'pool' runs more than once"):
        gradcam_autograd(unet64, np.zeros((1, 1, 32, 32)), ["pool"], [1], dtype=torch.float64)


def test_normalize_for_display() -> None:
    maps = np.stack([np.arange(6.0).reshape(2, 3), np.zeros((2, 3))])
    shown = normalize_for_display(maps)
    assert shown[0].max() == 1.0 and shown[0, 0, 1] == pytest.approx(0.2)
    assert not shown[1].any()


def _eager_artifact(tmp_path: Path, model: nn.Module, precision: str) -> Artifact:
    return prepare(TorchEagerBackend(), tmp_path, model, np.zeros((1, 1, 32, 32), np.float32), precision=precision)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_torch_eager_backend_gradcam(tmp_path: Path, precision: str) -> None:
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    images = np.random.default_rng(7).normal(size=(2, 1, 32, 32)).astype(np.float32)
    request = GradcamRequest(model=model, images=images, layers=(LAYER,), classes=(1,), calibration=images)
    result = TorchEagerBackend().gradcam(_eager_artifact(tmp_path, model, precision), request)
    reference = gradcam_autograd(model, images, [LAYER], [1])[LAYER]
    assert result.method == "autograd" and result.seconds_per_image > 0 and precision in result.notes
    assert result.maps[LAYER].shape == (2, 1, 32, 32)
    if precision == "fp32":
        np.testing.assert_array_equal(result.maps[LAYER], reference)
    else:
        assert not np.array_equal(result.maps[LAYER], reference)
        assert compare_maps(reference, result.maps[LAYER])[1].gradcam_pearson > 0.8


@pytest.fixture(scope="module")
def trained_unet(trained_unet_model) -> tuple[nn.Module, np.ndarray]:
    from bench.data.suite import get_suite

    suite = get_suite("synthetic-nuclei")
    return trained_unet_model, suite.normalize(suite.load("evaluation").images[:4])


@pytest.mark.slow
def test_randomized_head_on_trained_model(trained_unet) -> None:
    model, images = trained_unet
    reference = gradcam_autograd(model, images, [LAYER], [0, 1])[LAYER]
    torch.manual_seed(1)
    nudged, randomized = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        nudged.head.weight.mul_(1 + 0.01 * torch.randn_like(nudged.head.weight))
        randomized.head.reset_parameters()
    near = compare_maps(reference, gradcam_autograd(nudged, images, [LAYER], [0, 1])[LAYER])[1]
    far = compare_maps(reference, gradcam_autograd(randomized, images, [LAYER], [0, 1])[LAYER])[1]
    assert near.gradcam_spearman > 0.99
    assert far.gradcam_spearman < near.gradcam_spearman - 0.1
    # the trained model's nucleus and background maps explain different pixels
    assert compare_maps(reference[:, :1], reference[:, 1:])[1].gradcam_top10_iou < 0.2
