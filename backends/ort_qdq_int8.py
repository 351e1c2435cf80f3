"""ONNX Runtime, static int8 quantization in QDQ format.

Configured as ONNX Runtime's quantization guide recommends for CPU: `quant_pre_process` (shape
inference and graph optimization) first, then `quantize_static` with QDQ format, per-channel int8
weights and uint8 activations (U8S8, the layout x86 CPUs fuse into int8 kernels), calibrated with
min-max on the suite's calibration split.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import Artifact, Backend, PrepareContext, Session
from bench.onnx_export import INPUT_NAME, export_onnx

MODEL_FILE = "model.int8.onnx"


class _CalibrationReader:
    """Feeds one calibration image at a time, as `CalibrationDataReader` expects."""

    def __init__(self, images: np.ndarray) -> None:
        self._batches = iter([{INPUT_NAME: images[i : i + 1]} for i in range(len(images))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


class OrtSession(Session):
    def __init__(self, path: Path, device: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def to_input(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]

    def to_numpy(self, outputs: np.ndarray) -> np.ndarray:
        return outputs


def ort_unavailable_reason(device: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime is not importable ({exc})"
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return None


class OrtQdqInt8Backend(Backend):
    name = "ort-qdq-int8"
    precisions = ("int8",)
    devices = ("cpu", "cuda")

    def unavailable_reason(self, device: str) -> str | None:
        return super().unavailable_reason(device) or ort_unavailable_reason(device)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory(prefix="segbench-onnx-") as tmp:
            fp32 = export_onnx(ctx.model, ctx.input_shape, Path(tmp) / "model.onnx")
            preprocessed = Path(tmp) / "model.pre.onnx"
            quant_pre_process(str(fp32), str(preprocessed))
            quantize_static(
                str(preprocessed), str(out_dir / MODEL_FILE), _CalibrationReader(ctx.calibration),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        return {"activation_type": "uint8", "weight_type": "int8", "per_channel": True, "calibration": "minmax",
                "calibration_images": len(ctx.calibration)}

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return OrtSession(artifact.directory / MODEL_FILE, device, threads)
