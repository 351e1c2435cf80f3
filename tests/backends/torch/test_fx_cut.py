"""Grad-CAM by finite differences on the converted FX int8 graph, cut at the feature layer's codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from backends.torch.fx_cut import fx_feature_split, layer_node, output_mark
from backends.torch.fx_int8 import TorchFxInt8Backend, convert_fx_model, observe_fx_model, quantize_fx_model
from bench.backend import Artifact, GradcamRequest
from bench.gradcam.divergence import compare_maps
from bench.gradcam.method import gradcam_autograd
from bench.gradcam.split import SplitUnavailable
from bench.models import create_model
from tests.helpers import TokenNet, prepare

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

LAYER = "decoder.3"


def _prepare(model, calibration, folder, size: int = 32) -> Artifact:
    assert calibration.shape[1:] == (1, size, size)
    return prepare(TorchFxInt8Backend(), folder, model, calibration)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """Random-init U-Net (seed 0), its FX int8 artifact, the rebuilt converted graph, two 1x32x32 images."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    images = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    artifact = _prepare(model, calibration, tmp_path_factory.mktemp("fx"))
    # as Grad-CAM rebuilds it: with the transposed convs this CPU's int8 kernel got wrong kept float (FBGEMM's
    # on an AVX2-only EPYC: all four, and its results there depended on the batch size)
    kept = tuple(sorted(artifact.meta["float_modules"]))
    converted = quantize_fx_model(model, calibration, artifact.meta["engine"], float_modules=kept)
    return model, calibration, images, artifact, converted


def test_rebuilt_graph_reproduces_the_torchscript_artifact(unet) -> None:
    _, _, images, artifact, converted = unet
    saved = TorchFxInt8Backend().load(artifact, "cpu", 1)
    x = torch.from_numpy(images)
    with torch.no_grad():
        assert torch.equal(converted(x), saved.run(x))


def test_layer_output_is_the_last_fused_module_inside_the_layer(unet) -> None:
    converted = unet[4]
    node = layer_node(converted, LAYER)
    assert node.op == "call_module" and node.target == "decoder.3.2"
    assert type(converted.get_submodule(node.target)).__name__ == "ConvReLU2d"
    with pytest.raises(SplitUnavailable, match="not in the converted FX graph"):
        layer_node(converted, "decoder.3.3")  # the ReLU was fused into the conv before it


def test_unshifted_head_reproduces_the_logits_exactly(unet) -> None:
    _, _, images, _, converted = unet
    for layer in (LAYER, "encoder.3"):  # encoder.3: the head also reads three skip connections
        for i in range(2):
            split = fx_feature_split(converted, images[i : i + 1], layer, steps=4)
            with torch.no_grad():
                expected = converted(torch.from_numpy(images[i : i + 1])).numpy()
            np.testing.assert_array_equal(split.head_shifted(np.array([-1])), expected)
            np.testing.assert_array_equal(split.head_shifted(np.array([-1, -1])), np.repeat(expected, 2, axis=0))


def test_shift_moves_codes_by_exactly_steps_unless_clipped(unet) -> None:
    _, _, images, _, converted = unet
    split = fx_feature_split(converted, images[:1], LAYER, steps=5)
    codes, moved = split.meta["codes"].astype(int), split.meta["shifted_codes"].astype(int)
    assert split.meta["codes"].dtype == np.uint8
    room = codes <= 255 - 5
    assert np.all(moved[room] - codes[room] == 5) and np.all(moved[~room] == 255)
    scale = split.step[0] / 5
    np.testing.assert_allclose(split.step, 5 * scale)
    np.testing.assert_allclose(split.features, codes * scale, rtol=1e-6)  # ReLU output: zero point 0
    rows = split.head_shifted(np.array([-1, 0, 3]))
    assert not np.array_equal(rows[1], rows[0]) and not np.array_equal(rows[2], rows[0])


class _Residual(nn.Module):
    """A ResNet basic block without BN: relu(conv2(relu(conv1(x))) + x); FX fuses the add and ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu, self.act = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.relu(self.conv1(x))) + x)


def test_residual_block_output_is_the_fused_add_relu_not_its_last_conv() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), _Residual(8), nn.Conv2d(8, 2, 1)).eval()
    images = np.random.default_rng(0).standard_normal((4, 1, 16, 16)).astype(np.float32)
    prepared = observe_fx_model(model, images, "x86")
    mark, act_mark = output_mark(prepared, "2"), output_mark(prepared, "2.act")  # before convert rewrites it
    converted = convert_fx_model(prepared)
    assert layer_node(converted, "2").target == "2.conv2"  # convert_fx dropped the fused add_relu's metadata
    split = fx_feature_split(converted, images[:1], "2", mark=mark)
    assert split.meta["node"].startswith("add_relu")
    store = {}
    model[2].register_forward_hook(lambda m, i, o: store.setdefault("out", o))
    with torch.no_grad():
        model(torch.from_numpy(images[:1]))
    # the cut carries the block's output (to int8 precision): the conv before the residual add does not
    assert np.abs(split.features - store["out"][0].numpy()).max() < 0.1 * float(store["out"].abs().max())
    assert split.head_shifted(np.array([-1])).shape == (1, 2, 16, 16)
    # the block's ReLU module as the layer: gone from the converted graph, found through the convs feeding it
    act = fx_feature_split(converted, images[:1], "2.act", mark=act_mark)
    assert act.meta["node"] == split.meta["node"]
    with pytest.raises(SplitUnavailable, match="not in the converted FX graph"):
        fx_feature_split(converted, images[:1], "2.act")  # without the observed graph's mark it cannot be found


def test_a_token_layer_is_cut_at_its_codes_on_the_grid() -> None:
    model = TokenNet().eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 16, 20)).astype(np.float32)
    prepared = observe_fx_model(model, calibration, "x86")
    mark = output_mark(prepared, "mix")
    converted = convert_fx_model(prepared)
    split = fx_feature_split(converted, calibration[:1], "mix", mark=mark)  # raises unless the head is exact
    assert split.features.shape == split.meta["codes"].shape == (5, 8, 10)  # (1, 80, 5) tokens on their grid
    tokens = model.mix(model.embed(torch.from_numpy(calibration[:1]))).detach()
    grid = tokens.transpose(1, 2).reshape(1, 5, 8, 10)[0].numpy()
    assert np.abs(split.features - grid).max() < 0.05 * np.abs(grid).max()  # A to int8 precision
    shifted = split.head_shifted(np.array([-1, 0, 4]))
    assert shifted.shape == (3, 3, 16, 20) and not np.array_equal(shifted[1], shifted[0])


def test_a_float_layer_output_cannot_be_split(unet) -> None:
    model, _, images, _, _ = unet
    traced = torch.fx.symbolic_trace(model)  # not quantized: every output stays float
    with pytest.raises(SplitUnavailable, match="float tensor"):
        fx_feature_split(traced, images[:1], LAYER)


def test_backend_gradcam_maps_notes_and_rebuild_check(unet) -> None:
    model, calibration, images, artifact, _ = unet
    request = GradcamRequest(
        model=model, images=images, layers=(LAYER, "decoder.3.3"), classes=(0, 1), calibration=calibration, steps=4
    )
    found = TorchFxInt8Backend().gradcam(artifact, request)
    assert [(m.method, m.step) for m in found] == [
        ("finite-difference", 4),
        ("finite-difference", 2),
        ("finite-difference", 8),
        ("fake-quant", None),
    ]
    result, simulated = found[0], found[-1]
    assert result.cut == "fx" and result.vs_deployed_max_abs == 0.0
    assert result.method == "finite-difference" and result.seconds_per_image > 0
    # the fake-quant simulation is close to the deployed graph, not identical, and says by how much
    assert simulated.vs_deployed_max_abs is not None and simulated.vs_deployed_scale
    assert simulated.vs_deployed_max_abs < 0.1 * simulated.vs_deployed_scale
    assert compare_maps(result.maps[LAYER], simulated.maps[LAYER])[1].gradcam_pearson > 0.5
    cams = result.maps[LAYER]
    assert cams.shape == (2, 2, 32, 32) and np.isfinite(cams).all() and (cams >= 0).all() and cams.max() > 0
    assert "decoder.3.3" not in result.maps and "decoder.3.3: not split" in result.notes
    reference = gradcam_autograd(model, images, [LAYER], (0, 1))[LAYER]
    assert compare_maps(reference, cams)[1].gradcam_pearson > 0.5
    # other calibration images give another int8 graph than the saved one: refuse to explain it
    other = GradcamRequest(model=model, images=images, layers=(LAYER,), classes=(1,), calibration=calibration[:2])
    with pytest.raises(RuntimeError, match="does not reproduce the saved artifact"):
        TorchFxInt8Backend().gradcam(artifact, other)


@pytest.mark.slow
def test_int8_maps_of_a_trained_unet_agree_with_the_float_reference(tmp_path, trained_unet_model) -> None:
    from bench.data.suite import get_suite

    suite = get_suite("synthetic-nuclei")
    model = trained_unet_model
    calibration = suite.normalize(suite.load("calibration").images[:8])
    images = suite.normalize(suite.load("evaluation").images[:4])
    artifact = _prepare(model.eval(), calibration, tmp_path, size=images.shape[-1])
    request = GradcamRequest(model=model, images=images, layers=(LAYER,), classes=(1,), calibration=calibration)
    cams = TorchFxInt8Backend().gradcam(artifact, request)[0].maps[LAYER]
    reference = gradcam_autograd(model, images, [LAYER], (1,))[LAYER]
    assert np.isfinite(cams).all() and (cams >= 0).all() and cams.max() > 0
    assert compare_maps(reference, cams)[1].gradcam_pearson > 0.5
