"""torch's numeric debugging tools as segbench's SQNR probe, on a tiny conv -> relu -> conv model: FX's
numeric suite and torchao's PT2E debugger both report each weighted layer by module path, PT2E only the
layers asked for, and several images are averaged in signal and noise power, not in dB."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from backends.torch.fx_int8 import convert_fx_model, observe_fx_model
from backends.torch.layer_sqnr import fx_layer_sqnr, pt2e_layer_sqnr
from backends.torch.pt2e_int8 import capture, quantize

# quantizes (the project's rule for runtime tests): out of `make fast`
pytestmark = pytest.mark.integration

IMAGES = np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return Tiny().eval()


def _power_mean(*db: float) -> float:
    return float(10 * np.log10(np.mean([10 ** (v / 10) for v in db])))


def test_fx_reports_every_weighted_layer_by_module_path(model: nn.Module):
    observed = observe_fx_model(model, IMAGES, "x86", "tiny", (), "minmax")

    def sqnr(images: np.ndarray) -> dict[str, float]:
        return fx_layer_sqnr(observed, convert_fx_model(copy.deepcopy(observed)), images)

    both = sqnr(IMAGES[:2])
    assert sorted(both) == ["conv1", "conv2"]  # the relu is fused into conv1's subgraph
    assert all(20.0 < db < 60.0 for db in both.values()), both
    first, second = sqnr(IMAGES[:1]), sqnr(IMAGES[1:2])
    for layer in both:
        assert both[layer] == pytest.approx(_power_mean(first[layer], second[layer]), abs=1e-4)


def test_pt2e_reports_only_the_layers_asked_for(model: nn.Module):
    calibration = torch.from_numpy(IMAGES)
    captured = capture(model, calibration)
    converted = quantize(model, calibration, captured=copy.deepcopy(captured))
    both = pt2e_layer_sqnr(captured, converted, IMAGES[:2], {"conv1", "conv2"})
    assert sorted(both) == ["conv1", "conv2"] and all(20.0 < db < 60.0 for db in both.values()), both
    assert pt2e_layer_sqnr(captured, converted, IMAGES[:2], {"conv2", "not.a.layer"}) == {
        "conv2": pytest.approx(both["conv2"])
    }
    first = pt2e_layer_sqnr(captured, converted, IMAGES[:1], {"conv2"})["conv2"]
    second = pt2e_layer_sqnr(captured, converted, IMAGES[1:2], {"conv2"})["conv2"]
    assert both["conv2"] == pytest.approx(_power_mean(first, second), abs=1e-4)
