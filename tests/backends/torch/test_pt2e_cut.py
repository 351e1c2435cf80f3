"""Finite differences on a converted PT2E program cut at the feature layer's codes, checked against an
answer that can be written down."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("torchao")

from backends.torch.fakequant import add_taps, fake_quant_module  # noqa: E402
from backends.torch.pt2e_cut import code_node, pt2e_feature_split  # noqa: E402
from backends.torch.pt2e_int8 import _register_x86_lowering, quantize  # noqa: E402
from bench.gradcam.method import autograd_alphas, finite_difference_alphas  # noqa: E402
from bench.gradcam.split import SplitUnavailable  # noqa: E402
from tests.helpers import TokenNet  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


class KnownHead(nn.Module):
    """features = ReLU(conv 3x3) (the layer), logits = 1x1 conv of them: with the class score summed over
    the pixels of the raw logit, d score_c / d A_k(i, j) = W[c, k] at every pixel, so the exact alpha of
    both methods is the head's dequantized int8 weight."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def program() -> torch.fx.GraphModule:
    torch.manual_seed(0)
    model = KnownHead().eval()
    calibration = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 1, 12, 12)).astype(np.float32))
    _register_x86_lowering()
    return quantize(model, calibration)


def _head_weight(program: torch.fx.GraphModule) -> np.ndarray:
    """The 1x1 head conv's weight as the program computes with it: int8, dequantized per channel."""
    simulated = fake_quant_module(program)
    convs = [n for n in simulated.graph.nodes if "conv2d" in str(n.target)]
    weight = convs[-1].args[1]
    owner = simulated
    return getattr(owner, str(weight.target)).detach().numpy()[:, :, 0, 0]  # (classes, K)


def test_finite_differences_at_codes_give_the_known_alphas(program) -> None:
    image = 0.5 * np.random.default_rng(1).normal(size=(1, 1, 12, 12)).astype(np.float32)  # no code clips
    split = pt2e_feature_split(program, image, "features", steps=4)
    assert split.meta["clipped"] == 0.0 and split.meta["codes"].dtype == np.uint8
    alphas = finite_difference_alphas(split, [0, 1], reduction="sum")
    np.testing.assert_allclose(alphas, _head_weight(program), rtol=1e-4, atol=1e-5)


def test_fake_quant_autograd_gives_the_same_alphas(program) -> None:
    image = 0.5 * np.random.default_rng(1).normal(size=(1, 1, 12, 12)).astype(np.float32)
    simulated = add_taps(fake_quant_module(program), ["features"])
    _, alphas = autograd_alphas(simulated, torch.from_numpy(image), ["features"], [0, 1], reduction="sum")
    np.testing.assert_allclose(alphas["features"][0].numpy(), _head_weight(program), rtol=1e-4, atol=1e-5)


def test_the_cut_is_at_the_quantize_node_and_reproduces_the_program(program) -> None:
    node = code_node(program, "features")
    assert "quantize_per_tensor" in str(node.target)
    image = np.random.default_rng(2).normal(size=(1, 1, 12, 12)).astype(np.float32)
    split = pt2e_feature_split(program, image, "features", steps=2)  # raises unless the head is exact
    np.testing.assert_array_equal(
        split.head_shifted(np.array([-1]))[0], program(torch.from_numpy(image))[0].detach().numpy()
    )
    shifted = split.head_shifted(np.array([-1, 0, 3]))
    assert not np.array_equal(shifted[1], shifted[0]) and not np.array_equal(shifted[2], shifted[0])


def test_a_layer_outside_the_program_is_not_split(program) -> None:
    with pytest.raises(SplitUnavailable, match="not in the converted PT2E program"):
        code_node(program, "decoder")


def test_a_token_layer_is_cut_at_its_codes_on_the_grid() -> None:
    """(1, N, C) codes shifted on their grid, fed to the head as tokens: the same alphas as autograd through
    the fake-quant simulation, within the O(step) error of the finite difference."""
    rng = np.random.default_rng(0)
    calibration = torch.from_numpy(rng.normal(size=(8, 1, 16, 20)).astype(np.float32))
    _register_x86_lowering()
    program = quantize(TokenNet().eval(), calibration)
    image = rng.normal(size=(1, 1, 16, 20)).astype(np.float32)
    split = pt2e_feature_split(program, image, "mix", steps=1)  # raises unless the head is the program exactly
    assert split.features.shape == split.meta["codes"].shape == (5, 8, 10)  # 80 tokens, stride 2
    simulated = add_taps(fake_quant_module(program), ["mix"])
    _, alphas = autograd_alphas(simulated, torch.from_numpy(image), ["mix"], [0, 1, 2])
    reference = alphas["mix"][0].numpy()
    np.testing.assert_allclose(
        finite_difference_alphas(split, [0, 1, 2]), reference, atol=0.05 * np.abs(reference).max()
    )


def test_the_codes_are_found_past_an_eval_mode_dropout() -> None:
    """SegFormer's decoder: ReLU (the layer) -> dropout (a no-op in eval) -> quantize -> classifier."""

    class WithDropout(KnownHead):
        def __init__(self) -> None:
            super().__init__()
            self.dropout = nn.Dropout(0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.dropout(self.features(x)))

    torch.manual_seed(0)
    calibration = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 1, 12, 12)).astype(np.float32))
    _register_x86_lowering()
    program = quantize(WithDropout().eval(), calibration)
    node = code_node(program, "features")
    assert "quantize_per_tensor" in str(node.target) and "dropout" in node.args[0].name
    image = 0.5 * np.random.default_rng(1).normal(size=(1, 1, 12, 12)).astype(np.float32)
    split = pt2e_feature_split(program, image, "features", steps=4)  # raises unless the head is exact
    alphas = finite_difference_alphas(split, [0, 1], reduction="sum")
    np.testing.assert_allclose(alphas, _head_weight(program), rtol=1e-4, atol=1e-5)
