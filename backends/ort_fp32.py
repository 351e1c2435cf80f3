"""ONNX Runtime in fp32: the same exported graph the int8 backends start from, unquantized.

It separates what the runtime gains from what quantization gains: compare `ort-qdq-int8` with this
row, not only with PyTorch eager.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.backend import Artifact, Backend, PrepareContext, Session
from bench.onnx_export import export_onnx
from bench.ort_session import OrtSession, ort_unavailable_reason

MODEL_FILE = "model.onnx"


class OrtFp32Backend(Backend):
    name = "ort"
    precisions = ("fp32",)
    devices = ("cpu", "cuda")

    def unavailable_reason(self, device: str) -> str | None:
        return super().unavailable_reason(device) or ort_unavailable_reason(device)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        export_onnx(ctx.model, ctx.input_shape, out_dir / MODEL_FILE)
        return {"opset": "exporter default", "weights": "embedded"}

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return OrtSession(artifact.directory / MODEL_FILE, device, threads)
