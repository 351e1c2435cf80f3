"""NNCF post-training quantization of an OpenVINO model, as NNCF's documentation recommends: a
calibration `nncf.Dataset` of the suite's calibration images, `fast_bias_correction` on, the preset
and `subset_size` as options. Layers kept in float go to `nncf.IgnoredScope` by the names of their
OpenVINO operations.

`model_type="transformer"` passes `nncf.ModelType.TRANSFORMER`, NNCF's setting for transformers (read in
nncf 3.4's source): SmoothQuant runs first on the MatMuls (alpha 0.95; it moves activation outliers into
the weights, named `.../nncf_smooth_quant` in the IR), Add, Multiply (except on Sapphire Rapids), MVN
(LayerNorm), ReduceMean, Divide, Sqrt, Power, Subtract, Maximum and comparisons get no FakeQuantize of
their own, the output of multi-head attention is not quantized (an ignored pattern), and the activations
into a MatMul between activations are quantized symmetrically. NNCF's own default preset for a transformer
is mixed; segbench passes its `preset` option as given (performance unless asked), so NNCF's recommended
transformer set-up is `model_type=transformer` with `preset=mixed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from bench.backend import QuantLayer

NncfPreset = Literal["performance", "mixed"]
ModelTypeName = Literal["", "transformer"]  # "": NNCF's default (no model type)
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
    model_type: ModelTypeName = "",
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
        model_type=nncf_model_type(model_type),
    )


def smooth_quant_scales(model: Any) -> int:
    """How many SmoothQuant scales NNCF put into `model` (its `.../nncf_smooth_quant` operations): the
    mark `model_type=transformer` leaves on a model with MatMuls."""
    return sum(op.get_friendly_name().endswith("/nncf_smooth_quant") for op in model.get_ordered_ops())


def nncf_model_type(name: ModelTypeName) -> Any:
    """`nncf.ModelType` for the `model_type` option; None (NNCF's default) for ""."""
    import nncf

    return nncf.ModelType.TRANSFORMER if name == "transformer" else None
