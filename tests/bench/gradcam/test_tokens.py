"""Token layers (bench.gradcam.tokens): a layer's (B, N, C) tokens explained on their spatial grid, by
autograd, by finite differences of the float cut, and on a tiny SegFormer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.errors import UsageError
from bench.gradcam.method import (
    autograd_alphas,
    finite_difference_cams,
    gradcam_autograd,
    torch_feature_split,
)
from bench.gradcam.split import float_split
from bench.gradcam.tokens import first_output, spatial, to_grid, to_tokens, token_grid, with_first
from tests.helpers import TokenNet

CLASSES = (0, 1, 2)
SIZE = (11, 14)  # not square, and odd: the stride-2 grid is 6 x 7


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 1, *SIZE))


@pytest.mark.parametrize(
    ("tokens", "size", "grid"),
    [
        (256, (64, 64), (16, 16)),  # stride 4
        (42, (11, 14), (6, 7)),  # stride 2 of a non-square, odd input: ceil
        (234, (50, 70), (13, 18)),  # SegFormer's first stage (stride 4) at 50 x 70
        (6, (50, 70), (2, 3)),  # its last stage (stride 32)
        (154, (11, 14), (11, 14)),  # stride 1
        (1, (11, 14), (1, 1)),  # a global token grid
    ],
)
def test_the_grid_is_the_smallest_stride_whose_ceil_grid_has_n_tokens(tokens, size, grid) -> None:
    assert token_grid(tokens, size, "layer") == grid


@pytest.mark.parametrize("tokens", [7, 300, 0])
def test_a_token_count_that_fits_no_grid_is_one_line_naming_the_layer_and_n(tokens) -> None:
    with pytest.raises(
        UsageError, match=rf"^Grad-CAM layer 'blocks\.3' outputs {tokens} tokens, which fit no grid"
    ) as e:
        token_grid(tokens, (64, 64), "blocks.3")
    assert "\n" not in str(e.value)


def test_tokens_are_the_grid_in_raster_order_for_torch_and_numpy() -> None:
    grid = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    tokens = grid.flatten(2).transpose(1, 2)  # how a transformer makes its tokens
    assert torch.equal(to_grid(tokens, (4, 5)), grid) and torch.equal(to_tokens(grid), tokens)
    np.testing.assert_array_equal(to_grid(tokens.numpy(), (4, 5)), grid.numpy())
    np.testing.assert_array_equal(to_tokens(grid.numpy()), tokens.numpy())
    features, back = spatial(tokens.numpy(), (8, 10), "layer")  # stride 2
    assert features.shape == (2, 3, 4, 5) and back(features).shape == (2, 20, 3)
    same, identity = spatial(grid, (8, 10), "layer")
    assert same is grid and identity(grid) is grid
    with pytest.raises(UsageError, match=r"'layer' must output a \(B, K, h, w\) feature map or \(B, N, C\) tokens"):
        spatial(torch.zeros(2, 3), (8, 10), "layer")
    assert first_output((tokens, None)) is tokens and with_first((tokens, None), grid) == (grid, None)
    assert with_first(tokens, grid) is grid


@pytest.mark.parametrize("pair", [False, True], ids=["tokens", "tuple"])
def test_autograd_on_a_token_layer_equals_autograd_on_its_4d_twin(images, pair) -> None:
    tokens, twin = TokenNet(pair=pair).double().eval(), TokenNet(spatial=True).double().eval()
    features, alphas = autograd_alphas(tokens, torch.from_numpy(images), ["mix"], CLASSES)
    twin_features, twin_alphas = autograd_alphas(twin, torch.from_numpy(images), ["mix"], CLASSES)
    assert features["mix"].shape == (2, 5, 6, 7)  # A on its grid
    torch.testing.assert_close(features["mix"], twin_features["mix"], rtol=0, atol=0)
    torch.testing.assert_close(alphas["mix"], twin_alphas["mix"], rtol=1e-12, atol=1e-15)
    maps = gradcam_autograd(tokens, images, ["mix"], CLASSES, dtype=torch.float64)["mix"]
    twin_maps = gradcam_autograd(twin, images, ["mix"], CLASSES, dtype=torch.float64)["mix"]
    assert maps.shape == (2, len(CLASSES), *SIZE) and maps.any()
    np.testing.assert_allclose(maps, twin_maps, rtol=1e-6, atol=1e-9)


def test_a_token_layer_that_fits_no_grid_is_refused_by_the_hook(images) -> None:
    with pytest.raises(UsageError, match=r"^Grad-CAM layer 'embed' outputs 7 tokens, which fit no grid"):
        gradcam_autograd(_Reshaped(), images, ["embed"], CLASSES, dtype=torch.float64)


class _Reshaped(torch.nn.Module):
    """A layer whose 'tokens' (1, 7, C) come from no grid of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(2, 3).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.reshape(x.shape[0], -1)[:, :14].reshape(x.shape[0], 7, 2))
        return tokens.sum() * torch.ones(x.shape[0], 3, *x.shape[-2:], dtype=x.dtype)


def test_finite_differences_on_token_layers_match_autograd(images) -> None:
    model = TokenNet().double().eval()
    reference = gradcam_autograd(model, images[:1], ["mix"], CLASSES, dtype=torch.float64)["mix"][0]
    # the torch float cut: the shifted grid goes back into the model as tokens
    split = torch_feature_split(model, torch.from_numpy(images[:1]), "mix", 1e-6)
    assert split.features.shape == (5, 6, 7)
    np.testing.assert_allclose(finite_difference_cams(split, CLASSES, SIZE), reference, rtol=1e-4, atol=1e-6)
    # the float cut every runtime's cut uses: channel k of the grid is column k of the tokens
    image = torch.from_numpy(images[:1])
    with torch.no_grad():
        embedded = model.embed(image)
        tokens = model.mix(embedded).numpy()  # (1, 42, 5)
    features, back = spatial(tokens, SIZE, "mix")

    def run_head(batch: np.ndarray) -> np.ndarray:
        rows = torch.from_numpy(back(batch))
        assert rows.shape[1:] == (42, 5)  # the head reads tokens
        with torch.no_grad():
            grid = model.classifier(rows).transpose(1, 2).reshape(len(rows), len(CLASSES), 6, 7)
            return torch.nn.functional.interpolate(grid, size=SIZE, mode="bilinear", align_corners=False).numpy()

    split = float_split(features[0], run_head, steps=4, tensor="mix", float_step=1e-4)
    cams = finite_difference_cams(split, CLASSES, SIZE)
    np.testing.assert_allclose(cams, reference, rtol=1e-3, atol=1e-3 * reference.max())


def test_gradcam_on_a_tiny_segformer_token_layer() -> None:
    transformers = pytest.importorskip("transformers")
    from bench.models.huggingface import HuggingFaceSegmenter

    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        num_channels=1,
        hidden_sizes=[8, 16, 16, 16],
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16,
        num_labels=2,
    )
    model = HuggingFaceSegmenter(transformers.SegformerForSemanticSegmentation(config)).eval().double()
    images = np.random.default_rng(1).standard_normal((1, 1, 50, 70))
    stage = "model.segformer.stages.1"
    layers = [f"{stage}.layer_norm", f"{stage}.blocks.0.attention"]  # tokens; a tuple (tokens, weights)
    features, _ = autograd_alphas(model, torch.from_numpy(images), layers, (0, 1))
    assert [tuple(features[layer].shape) for layer in layers] == [(1, 16, 7, 9)] * 2  # stride 8: 63 tokens
    maps = gradcam_autograd(model, images, layers, (0, 1), dtype=torch.float64)
    split = torch_feature_split(model, torch.from_numpy(images), layers[0], 1e-7)
    fd = finite_difference_cams(split, (0, 1), (50, 70))
    for layer in layers:
        assert maps[layer].shape == (1, 2, 50, 70) and np.isfinite(maps[layer]).all() and maps[layer].any()
    np.testing.assert_allclose(fd, maps[layers[0]][0], rtol=1e-2, atol=1e-4 * maps[layers[0]].max())
    assert np.corrcoef(fd.ravel(), maps[layers[0]][0].ravel())[0, 1] > 0.99999
