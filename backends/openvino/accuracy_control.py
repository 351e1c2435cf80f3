"""NNCF's accuracy control (`nncf.quantize_with_accuracy_control`): quantize, rank the quantized layers
by their contribution to the metric's drop, and revert them to float one group at a time until the
drop is at most `max_drop`. segbench reports it beside its own fallback (`segbench tune`).

NNCF validates each candidate with `validate` on OpenVINO models it compiles itself (f32 inference
precision); the layers it reverted are read back from the returned model: a weighted operation whose
weights no longer come out of a quantizer (a FakeQuantize, or the int8 constant NNCF compresses it to).
The returned model itself is saved (named by its content hash) and deployed through `openvino-int8`'s
`ir` option: rebuilding it with those layers in `float_layers` instead re-runs calibration and bias
correction without them, which measured differently (iou_Pavement drift -0.0033 against -0.0003 for
NNCF's own model, DeepLab v3+ on CamVid's tuning split).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from backends.openvino.quantize import WEIGHTED_TYPES, ModelTypeName, NncfPreset, nncf_model_type, weighted_operations
from bench.backend import AccuracyControlResult, QuantLayer

METHOD = "nncf.quantize_with_accuracy_control"
_QUANTIZED_WEIGHT_TYPES = ("i8", "u8", "i4", "u4")
_PASS_THROUGH = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze")


def _weights_quantized(op: Any) -> bool:
    """Does the weight input of a weighted operation come out of a quantizer (looking a few nodes up)?"""
    stack, seen = [op.input(1).get_source_output().get_node()], 0
    while stack and seen < 16:
        node, seen = stack.pop(), seen + 1
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return True
        if kind == "Constant":
            if node.get_element_type().get_type_name() in _QUANTIZED_WEIGHT_TYPES:
                return True
            continue
        if kind in _PASS_THROUGH:
            stack.extend(i.get_source_output().get_node() for i in node.inputs())
    return False


def float_operations(model: Any) -> set[str]:
    """Names of the weighted operations of `model` whose weights are not quantized."""
    return {
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() in WEIGHTED_TYPES and not _weights_quantized(op)
    }


def accuracy_control(
    model: Any,
    layers: Iterable[QuantLayer],
    calibration: np.ndarray,
    images: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], float],
    max_drop: float,
    out_dir: Path,
    *,
    preset: NncfPreset = "performance",
    subset_size: int = 0,
    fast_bias_correction: bool = True,
    model_type: ModelTypeName = "",
) -> AccuracyControlResult:
    import nncf

    scores: list[float] = []

    def validate(compiled: Any, data: Iterable[tuple[int, np.ndarray]]) -> float:
        # NNCF calls this on the whole split and on single items (to rank layers): each item carries its index
        items = list(data)
        logits = np.concatenate([np.asarray(compiled(image)[0]) for _, image in items])
        scores.append(float(score(logits, np.array([index for index, _ in items]))))
        return scores[-1]

    calibration_items = [np.ascontiguousarray(image[None], np.float32) for image in calibration]
    start = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(calibration_items),
        nncf.Dataset(
            [(i, np.ascontiguousarray(image[None], np.float32)) for i, image in enumerate(images)],
            lambda item: item[1],
        ),
        validation_fn=validate,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
        subset_size=subset_size or len(calibration_items),
        fast_bias_correction=fast_bias_correction,
        model_type=nncf_model_type(model_type),
    )
    seconds = time.perf_counter() - start
    reverted = float_operations(quantized)
    by_layer = weighted_operations(model, layers)
    kept = tuple(name for name, ops in by_layer.items() if any(op in reverted for op in ops))
    unmatched = reverted - {op for ops in by_layer.values() for op in ops}
    final = _score_of(quantized, images, score)
    xml = _save_by_content(quantized, out_dir)
    return AccuracyControlResult(
        method=METHOD,
        float_layers=kept,
        float_score=_score_of(model, images, score),
        quantized_score=final,
        seconds=seconds,
        options={"ir": str(xml)},
        notes=f"{len(scores)} validations"
        + (f"; {len(unmatched)} reverted operation(s) not matched to a layer" if unmatched else ""),
    )


def _save_by_content(model: Any, out_dir: Path) -> Path:
    """The IR saved as `nncf-<content hash>.xml/.bin`: the `ir` option's path then names its content, so
    the artifact cache (keyed on the options) can never serve another model under it."""
    import hashlib
    import tempfile

    from backends.openvino.runtime import BIN_FILE, XML_FILE, save_ir

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        xml = save_ir(model, Path(tmp))
        digest = hashlib.sha256(xml.read_bytes() + (Path(tmp) / BIN_FILE).read_bytes()).hexdigest()[:16]
        target = out_dir / f"nncf-{digest}.xml"
        (Path(tmp) / BIN_FILE).replace(target.with_suffix(".bin"))
        (Path(tmp) / XML_FILE).replace(target)
    return target


def _score_of(model: Any, images: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float]) -> float:
    """A model's score on every image, compiled as NNCF's validation compiles it (f32)."""
    from backends.openvino.runtime import compile_model

    compiled = compile_model(model, 2, "fp32")
    logits = np.concatenate([np.asarray(compiled(np.ascontiguousarray(i[None], np.float32))[0]) for i in images])
    return float(score(logits, np.arange(len(images))))
