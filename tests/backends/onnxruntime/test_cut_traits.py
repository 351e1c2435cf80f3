"""Finite differences on an fp32 ONNX graph must reproduce autograd's maps, whatever follows the cut.

The model has every trait that made a cut produce all-zero maps on a real street-scene network: a
residual add after the cut (the cut tensor consumed twice), PReLU, and max-pool indices passed from the
encoder to a decoder's MaxUnpool. ONNX's MaxPool indices are flat over the whole tensor, batch
included, so indices from a batch-1 pass repeated along the batch scatter every shifted row into row 0:
the rows past the first come out zero and the maps of nothing. The graph is written with onnx.helper
(a user's `--onnx` file, as another exporter writes it), the same weights as the torch model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from backends.onnxruntime.gradcam_cut import onnx_gradcam
from bench.backend import GradcamRequest
from bench.gradcam import split as split_module
from bench.gradcam.divergence import compare_maps
from bench.gradcam.explain import FP32_FD_MIN_PEARSON
from bench.gradcam.method import gradcam_autograd

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

CLASSES = (0, 1, 2)


class Traits(nn.Module):
    """conv -> max-pool (indices kept) -> [block: conv, PReLU] = A -> A + conv(A) -> PReLU -> max-unpool
    with the encoder's indices -> 1x1 head."""

    def __init__(self, channels: int = 6, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.block = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels))
        self.after = nn.Conv2d(channels, channels, 3, padding=1)
        self.prelu = nn.PReLU(channels)
        self.unpool = nn.MaxUnpool2d(2)
        self.head = nn.Conv2d(channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, indices = self.pool(self.stem(x))
        a = self.block(pooled)
        b = self.prelu(a + self.after(a))
        return self.head(self.unpool(b, indices))


def _onnx_graph(model: Traits, path: Path) -> Path:
    """The same network in ONNX ops: MaxPool's second output (global flat indices) feeds MaxUnpool."""
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    slopes = ("block.1.weight", "prelu.weight")  # PRelu slopes broadcast over (C, 1, 1)
    inits = [numpy_helper.from_array(v.reshape(-1, 1, 1) if k in slopes else v, k) for k, v in weights.items()]
    nodes = [
        helper.make_node("Conv", ["input", "stem.weight", "stem.bias"], ["stem"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["stem"], ["pooled", "indices"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pooled", "block.0.weight", "block.0.bias"], ["conv_a"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["conv_a", "block.1.weight"], ["A"]),
        helper.make_node("Conv", ["A", "after.weight", "after.bias"], ["after"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["A", "after"], ["sum"]),
        helper.make_node("PRelu", ["sum", "prelu.weight"], ["b"]),
        helper.make_node("Shape", ["stem"], ["stem_shape"]),
        helper.make_node(
            "MaxUnpool", ["b", "indices", "stem_shape"], ["unpooled"], kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Conv", ["unpooled", "head.weight", "head.bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "traits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    return path


@pytest.fixture(scope="module")
def traits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Traits, Path, np.ndarray]:
    torch.manual_seed(0)
    model = Traits().eval()
    path = _onnx_graph(model, tmp_path_factory.mktemp("traits") / "traits.onnx")
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    import onnxruntime as ort

    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": images})[0]
    torch.testing.assert_close(torch.from_numpy(logits), model(torch.from_numpy(images)), atol=1e-4, rtol=1e-4)
    return model, path, images


def _fd_maps(path: Path, images: np.ndarray) -> tuple[np.ndarray, str]:
    request = GradcamRequest(
        model=nn.Identity(), images=images, layers=("block",), classes=CLASSES, calibration=images, floor_steps=()
    )
    (found,) = onnx_gradcam(path, request, {"block": "A"})
    return found.maps["block"], found.notes


def test_fp32_finite_differences_match_autograd_past_unpool_prelu_and_a_residual_add(traits) -> None:
    model, path, images = traits
    maps, notes = _fd_maps(path, images)
    reference = gradcam_autograd(model, images, ["block"], CLASSES)["block"]
    records, summary = compare_maps(reference, maps, CLASSES)
    assert all(r.reference_zero == r.backend_zero for r in records)  # zero only where autograd's is zero
    assert summary.gradcam_zero_maps < len(records)
    assert summary.gradcam_pearson >= FP32_FD_MIN_PEARSON, summary
    assert "side inputs computed per row" in notes  # the flat indices were detected and recomputed


def test_repeating_batch_one_indices_gives_maps_of_nothing(traits, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the row check (what segbench did before), the same cut's maps are wrong: the test above
    can fail."""
    model, path, images = traits
    monkeypatch.setattr(split_module, "check_rows_independent", lambda split, layer, rows=3: 0.0)
    maps, notes = _fd_maps(path, images)
    reference = gradcam_autograd(model, images, ["block"], CLASSES)["block"]
    summary = compare_maps(reference, maps, CLASSES)[1]
    assert "per row" not in notes
    assert summary.gradcam_zero_maps > 0 or summary.gradcam_pearson < 0.9
