"""Fake-quant simulation of a PT2E int8 program: same forward, differentiable, hooked at the layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchao")

from backends.torch.fakequant import (  # noqa: E402
    UnsupportedProgram,
    add_taps,
    fake_quant_module,
    gradcam_fakequant,
    layer_output,
    load_program,
    max_forward_difference,
)
from backends.torch.pt2e_int8 import (  # noqa: E402
    MODEL_FILE,
    TorchaoPt2eInt8Backend,
    _export_example,
    _register_x86_lowering,
    quantize,
    save_program,
)
from bench.backend import (
    Artifact,  # noqa: E402
    GradcamRequest,  # noqa: E402
)
from bench.errors import UsageError  # noqa: E402
from bench.gradcam.divergence import compare_maps  # noqa: E402
from bench.gradcam.method import autograd_alphas, gradcam_autograd  # noqa: E402
from bench.models import create_model  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

LAYER = "decoder.3"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, np.ndarray]:
    """A random-init unet (seed 0) quantized by the backend's own PT2E code, 8 random calibration images."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 1, 32, 32)).astype(np.float32))
    _register_x86_lowering()
    directory = tmp_path_factory.mktemp("pt2e")
    save_program(quantize(model, calibration), _export_example(calibration), directory / MODEL_FILE)
    images = np.random.default_rng(1).normal(size=(3, 1, 32, 32)).astype(np.float32)
    return model, directory, images


@pytest.fixture(scope="module")
def program(quantized) -> torch.fx.GraphModule:
    return load_program(quantized[1] / MODEL_FILE)


def test_simulation_reproduces_the_program(quantized, program) -> None:
    simulated = fake_quant_module(program)
    assert max_forward_difference(program, simulated, quantized[2]) <= 1e-5
    names = [str(n.target) for n in simulated.graph.nodes]
    assert not any("quantized_decomposed" in name for name in names)  # every Q/DQ was rewritten
    assert sum("fake_quantize_per_tensor_affine" in name for name in names) > 10
    assert any("quantized_decomposed.quantize_per_tensor" in str(n.target) for n in program.graph.nodes)


def test_simulation_is_differentiable_with_straight_through_gradients(quantized, program) -> None:
    simulated = fake_quant_module(program)
    x = torch.from_numpy(quantized[2][:1]).requires_grad_(True)
    simulated(x).softmax(1)[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # rounding alone would give zero gradient


def test_feature_tap_reads_the_dequantized_layer_output(quantized, program) -> None:
    simulated = add_taps(fake_quant_module(program), [LAYER])
    node = layer_output(fake_quant_module(program).graph, LAYER)
    assert node.target is torch.fake_quantize_per_tensor_affine
    scale, zero_point = node.args[1], node.args[2]
    features, alphas = autograd_alphas(simulated, torch.from_numpy(quantized[2][:1]), [LAYER], [1])
    codes = features[LAYER] / scale + zero_point
    assert features[LAYER].shape == (1, 16, 32, 32)
    torch.testing.assert_close(codes, codes.round(), atol=1e-3, rtol=0)  # on the uint8 grid: after Q/DQ
    assert alphas[LAYER].abs().max() > 0


def test_fake_quant_maps_are_sane(quantized, program) -> None:
    model, _, images = quantized
    maps, info = gradcam_fakequant(program, images, [LAYER, "decoder.2"], [0, 1])
    assert info["max_abs_vs_program"] <= 1e-5
    for layer in (LAYER, "decoder.2"):
        assert maps[layer].shape == (3, 2, 32, 32) and maps[layer].dtype == np.float32
        assert np.isfinite(maps[layer]).all() and (maps[layer] >= 0).all() and maps[layer].max() > 0
    reference = gradcam_autograd(model, images, [LAYER], [0, 1])[LAYER]
    # random weights: no guarantee of agreement, but maps of the same model must be related
    assert compare_maps(reference, maps[LAYER])[1].gradcam_pearson > 0.5


def test_unknown_layer_names_valid_layers(program) -> None:
    with pytest.raises(UsageError, match="'decoder.7'.*valid layers include: .*head"):
        add_taps(fake_quant_module(program), ["decoder.7"])


def test_non_graph_module_is_unsupported() -> None:
    with pytest.raises(UnsupportedProgram, match="GraphModule"):
        fake_quant_module(create_model("unet", 1, 2))


def test_backend_gradcam_gives_both_methods_and_the_floor_steps(quantized) -> None:
    model, directory, images = quantized
    request = GradcamRequest(model=model, images=images[:2], layers=(LAYER,), classes=(1,), calibration=images)
    meta = {"input_shape": [1, 32, 32], "compiled_vs_converted_max_abs": 0.5, "compiled_max_abs_logit": 10.0}
    found = TorchaoPt2eInt8Backend().gradcam(Artifact(directory, meta), request)
    assert [(m.method, m.step) for m in found] == [
        ("finite-difference", 4),
        ("finite-difference", 2),
        ("finite-difference", 8),
        ("fake-quant", None),
    ]
    for maps in found:
        assert maps.maps[LAYER].shape == (2, 1, 32, 32) and maps.seconds_per_image > 0
        assert maps.vs_deployed_scale == 10.0 and maps.vs_deployed_max_abs >= 0.5
    assert found[0].cut == "pt2e" and "codes of" in found[0].notes and "differs from the uncompiled" in found[0].notes
    assert "fake-quant" in found[-1].notes


def test_backend_gradcam_runs_only_the_methods_asked_for(quantized) -> None:
    model, directory, images = quantized
    request = GradcamRequest(
        model=model, images=images[:1], layers=(LAYER,), classes=(1,), calibration=images, methods=("fake-quant",)
    )
    found = TorchaoPt2eInt8Backend().gradcam(Artifact(directory, {"input_shape": [1, 32, 32]}), request)
    assert [m.method for m in found] == ["fake-quant"]
