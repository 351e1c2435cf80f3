"""A random-weight U-Net's ONNX graphs, shared by the ONNX Runtime and TensorRT graph tests."""

import numpy as np
import pytest
import torch

from backends.onnx.export import export_onnx
from backends.onnxruntime.quantize import quantize_qdq
from bench.models import create_model


@pytest.fixture(scope="package")
def graphs(tmp_path_factory):
    """A random-weight U-Net on 32x32, its fp32 export, and both quantizer presets' output."""
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    folder = tmp_path_factory.mktemp("onnx")
    fp32 = export_onnx(model, (1, 32, 32), folder / "model.onnx")
    for preset in ("tensorrt", "cpu"):
        quantize_qdq(fp32, folder / f"{preset}.onnx", calibration, preset=preset)
    return model, calibration, folder
