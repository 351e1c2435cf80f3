"""Each node output's SQNR in the QDQ model against the float model, by onnxruntime's own
`qdq_loss_debug` (`collect_activations`, `create_activation_matching`, `compute_activation_error`): the
cheap sensitivity proxy of `segbench tune`. Results are keyed by module path (`bench.backend.layers`);
a layer the tool could not match is absent, not zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure.drift import finite_sqnr


def onnx_layer_sqnr(
    float_path: Path, qdq_path: Path, images: np.ndarray, input_name: str, layer_of: dict[str, str]
) -> dict[str, float]:
    """SQNR (dB) of each node output that the QDQ model quantized, float model vs QDQ model
    (`xmodel_err` of onnxruntime's qdq_loss_debug), for the nodes in `layer_of` (node output -> layer)."""
    import tempfile

    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    def reader() -> Iterable[dict[str, np.ndarray]]:
        return _Reader([{input_name: images[i : i + 1]} for i in range(len(images))])

    with tempfile.TemporaryDirectory(prefix="segbench-sqnr-") as tmp:
        float_aug, qdq_aug = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(float_path), str(float_aug))
        modify_model_output_intermediate_tensors(str(qdq_path), str(qdq_aug))
        float_acts = collect_activations(str(float_aug), reader())
        qdq_acts = collect_activations(str(qdq_aug), reader())
    matched = create_activation_matching(qdq_acts, float_acts)
    errors = compute_activation_error(matched)
    return finite_sqnr(
        {layer_of[t]: float(e["xmodel_err"]) for t, e in errors.items() if t in layer_of and "xmodel_err" in e}
    )


class _Reader:
    """`CalibrationDataReader` over prepared feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def __iter__(self) -> Any:
        return iter(self.get_next, None)
