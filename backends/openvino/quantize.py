"""NNCF post-training quantization of an OpenVINO model, as NNCF's documentation recommends: a
calibration `nncf.Dataset` of the suite's calibration images, `fast_bias_correction` on, the preset
and `subset_size` as options. Layers kept in float go to `nncf.IgnoredScope` by the names of their
OpenVINO operations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from bench.backend import QuantLayer

NncfPreset = Literal["performance", "mixed"]
# OpenVINO operations that carry a layer's weights (an ONNX Conv with a bias becomes
# `<node>/WithoutBiases` (Convolution) followed by `<node>` (Add)).
WEIGHTED_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")


def weighted_operations(model: Any, layers: Iterable[QuantLayer]) -> dict[str, list[str]]:
    """Module path -> the names of the OpenVINO operations that compute that layer (found by the ONNX
    node's name, which `ov.convert_model` keeps as the friendly name or its prefix)."""
    ops = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in WEIGHTED_TYPES]
    found: dict[str, list[str]] = {}
    for layer in layers:
        names = [name for name in ops if name == layer.node or name.startswith(layer.node + "/")]
        if names:
            found[layer.name] = names
    return found


def nncf_quantize(
    model: Any,
    calibration: np.ndarray,
    *,
    preset: NncfPreset = "performance",
    subset_size: int = 0,
    fast_bias_correction: bool = True,
    ignored: Iterable[str] = (),
) -> Any:
    """The quantized model (FakeQuantize nodes inserted); `subset_size` 0: every calibration image."""
    import nncf

    images = [np.ascontiguousarray(image[None], np.float32) for image in calibration]
    names = list(ignored)
    return nncf.quantize(
        model,
        nncf.Dataset(images),
        preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
        subset_size=subset_size or len(images),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=names) if names else None,
    )
