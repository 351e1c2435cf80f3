"""Static QDQ quantization of an ONNX model with ONNX Runtime's tools, in one of two presets.

- `cpu` (U8S8): uint8 activations, int8 per-channel weights — the layout ONNX Runtime fuses into
  int8 kernels on x86 CPUs.
- `tensorrt` (S8S8, symmetric): int8 activations and weights with every zero point 0, per-channel
  weights along the output channels — what TensorRT's explicit-quantization parser accepts.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import typing
from pathlib import Path
from typing import Literal

import numpy as np

from bench.onnx.names import INPUT_NAME

Preset = Literal["cpu", "tensorrt"]
# How the int8 graph is written: QDQ (QuantizeLinear/DequantizeLinear pairs around float ops, fused by
# ONNX Runtime into int8 kernels when the session is made) or QOperator (QLinearConv and friends written
# into the file directly, ONNX Runtime's older format). Same arithmetic; which runs faster is measured.
QuantFormatName = Literal["qdq", "qoperator"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
PRESETS: tuple[str, ...] = typing.get_args(Preset)
CALIBRATION_METHODS: tuple[str, ...] = typing.get_args(CalibrationMethod)


def parse_op_types(text: str) -> tuple[str, ...]:
    """The `op_types` option's comma-separated ONNX op types, once each; empty: ONNX Runtime's default."""
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def quantizable_op_types(quant_format: str) -> tuple[str, ...]:
    """The op types ONNX Runtime's static quantizer handles in `quant_format`, read from its own registry:
    QOperator writes a QLinear* operator for each type of `QLinearOpsRegistry`; QDQ has a quantizer of its own
    for each type of `QDQRegistry` and puts Q/DQ pairs around the others of `QLinearOpsRegistry` (their union
    is what `quantize_static` quantizes when it is given no op types). `IntegerOpsRegistry` is dynamic
    quantization's, which segbench does not do."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    found = set(QLinearOpsRegistry) | (set(QDQRegistry) if quant_format == "qdq" else set())
    return tuple(sorted(found))


def op_types_problem(text: str, quant_format: str, option: str = "op_types") -> str | None:
    """One line naming the op types of `text` ONNX Runtime cannot quantize in `quant_format` and the ones it
    can; None when all can (or ONNX Runtime is not installed: the backend then says it is unavailable)."""
    given = parse_op_types(text)
    if not given:
        return None
    try:
        valid = quantizable_op_types(quant_format)
    except ImportError:
        return None
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return None
    return (
        f"{option}={text}: {', '.join(unknown)} {'is not an op type' if len(unknown) == 1 else 'are not op types'} "
        f"ONNX Runtime quantizes in {quant_format} format; valid (case matters): {', '.join(valid)}"
    )


class CalibrationReader:
    """Feeds one calibration image at a time, as `CalibrationDataReader` expects."""

    def __init__(self, images: np.ndarray) -> None:
        self._batches = iter([{INPUT_NAME: images[i : i + 1]} for i in range(len(images))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def __iter__(self):  # some ORT versions iterate the reader
        return iter(self.get_next, None)


def quantize_qdq(
    fp32_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    preset: str = "cpu",
    calibration_method: str = "minmax",
    float_layers: tuple[str, ...] = (),
    preprocessed_copy: Path | None = None,
    quant_format: str = "qdq",
    per_channel: bool = True,
    backend: str = "ort-qdq-int8",
    op_types: tuple[str, ...] = (),
    reduce_range: bool = False,
) -> dict[str, object]:
    """`quant_pre_process` then `quantize_static` (QDQ, per-channel), with the nodes of `float_layers`
    (module paths or node names, `backends.onnx.layers`) excluded and, when `op_types` is given, only nodes of
    those ONNX op types quantized (`op_types_to_quantize`; empty: every type ONNX Runtime can, its default),
    and with `reduce_range` the weights in 7 bits (codes -64..64: on a CPU without VNNI the int8 kernels sum
    pairs of u8 x s8 products in int16 with saturation, which 2 x 255 x 64 cannot reach); returns what was
    done. The float graph quantization started from is copied to `preprocessed_copy` when given (for
    `qdq_loss_debug`). `backend` is the one whose `float_layers` option an error names (TensorRT's int8 graph
    is quantized here too)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from backends.onnx.layers import nodes_to_exclude

    if preset not in PRESETS:
        raise ValueError(f"preset '{preset}' is not one of {', '.join(PRESETS)}")
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[calibration_method]
    symmetric = preset == "tensorrt"
    activation = QuantType.QInt8 if symmetric else QuantType.QUInt8
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {}
    with tempfile.TemporaryDirectory(prefix="segbench-quant-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        preprocessed = Path(tmp) / "model.pre.onnx"
        quant_pre_process(str(fp32_path), str(preprocessed))
        excluded = nodes_to_exclude(backend, preprocessed, float_layers) if float_layers else []
        if preprocessed_copy is not None:
            import shutil

            shutil.copyfile(preprocessed, preprocessed_copy)
        quantize_static(
            str(preprocessed),
            str(out_path),
            CalibrationReader(calibration),
            quant_format=QuantFormat.QOperator if quant_format == "qoperator" else QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=activation,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=excluded,
            op_types_to_quantize=list(op_types) or None,
            extra_options=extra,
        )
    return {
        "preset": preset,
        "activation_type": "int8" if symmetric else "uint8",
        "weight_type": "int8",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "format": quant_format,
        "symmetric": symmetric,
        "calibration": calibration_method,
        "calibration_images": int(len(calibration)),
        "float_layers": list(float_layers),
        "nodes_excluded": excluded,
        "op_types": list(op_types),  # empty: ONNX Runtime's default, every op type it can quantize
    }
