"""NNCF's accuracy control on a small U-Net: the layers it reverts are read back from its model and
named by module path, so `float_layers` can replay them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from backends.onnx.export import export_onnx  # noqa: E402
from backends.onnx.layers import weighted_nodes  # noqa: E402
from backends.openvino.accuracy_control import METHOD, accuracy_control, float_operations  # noqa: E402
from backends.openvino.quantize import nncf_quantize  # noqa: E402
from backends.openvino.runtime import read_onnx  # noqa: E402
from bench.models import create_model  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    images = rng.standard_normal((6, 1, 32, 32)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, (1, 32, 32), Path(tmp) / "unet.onnx")
        layers = weighted_nodes(path)
        ov_model = read_onnx(path, (1, 32, 32))
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    return ov_model, layers, calibration, images, reference


def test_float_operations_reads_which_weights_are_quantized(unet):
    ov_model, layers, calibration, _, _ = unet
    assert len(float_operations(ov_model)) == len(layers) == 23  # nothing quantized yet
    assert float_operations(nncf_quantize(ov_model.clone(), calibration)) == set()


def test_reverted_layers_are_named_by_module_path_and_improve_the_score(unet, tmp_path):
    ov_model, layers, calibration, images, reference = unet

    def closeness(logits: np.ndarray, indices: np.ndarray) -> float:  # minus the relative error vs torch
        return -float(np.abs(logits - reference[indices]).mean() / np.abs(reference[indices]).mean())

    result = accuracy_control(ov_model.clone(), layers, calibration, images, closeness, 1e-4, tmp_path / "peer")
    assert result.method == METHOD and result.seconds > 0 and "validations" in result.notes
    assert result.float_score == pytest.approx(0.0, abs=1e-5)  # the float IR is the torch model
    assert result.float_layers and set(result.float_layers) <= {layer.name for layer in layers}
    all_int8 = nncf_quantize(ov_model.clone(), calibration)
    from backends.openvino.accuracy_control import _score_of

    assert result.quantized_score > _score_of(all_int8, images, closeness)  # reverting layers helped

    xml = Path(result.options["ir"])  # NNCF's own model, saved under its content hash for the ir option
    assert xml.parent == tmp_path / "peer" and xml.name.startswith("nncf-") and xml.with_suffix(".bin").is_file()


def test_model_type_reaches_nncf_with_and_without_accuracy_control(tmp_path, monkeypatch):
    """`model_type=transformer` is nncf.ModelType.TRANSFORMER in both entry points: `nncf.quantize` leaves
    SmoothQuant scales in the model, and `quantize_with_accuracy_control` is called with it."""
    import nncf

    from backends.openvino.quantize import smooth_quant_scales
    from tests.helpers import tiny_transformer

    model, calibration = tiny_transformer()
    with tempfile.TemporaryDirectory() as tmp:
        ov_model = read_onnx(export_onnx(model, (3, 8, 8), Path(tmp) / "tiny.onnx"), (3, 8, 8))
        layers = weighted_nodes(Path(tmp) / "tiny.onnx")
    assert smooth_quant_scales(nncf_quantize(ov_model.clone(), calibration)) == 0
    assert smooth_quant_scales(nncf_quantize(ov_model.clone(), calibration, model_type="transformer")) > 0

    called = {}

    def quantize_with_accuracy_control(model, *args, **kwargs):
        called.update(kwargs)
        return model  # nothing quantized: every layer reads as reverted

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", quantize_with_accuracy_control)
    accuracy_control(
        ov_model.clone(), layers, calibration, calibration[:2], lambda *_: 0.0, 0.01, tmp_path, model_type="transformer"
    )
    assert called["model_type"] == nncf.ModelType.TRANSFORMER
