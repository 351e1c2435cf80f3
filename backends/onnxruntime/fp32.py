"""ONNX Runtime in fp32: the same exported graph the int8 backends start from, unquantized.

It separates what the runtime gains from what quantization gains: compare `ort-qdq-int8` with this
row, not only with PyTorch eager.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.onnx.export import EXPORT_LIBRARIES, fp32_onnx, layer_tensors, onnx_source
from backends.onnxruntime.session import OrtSession, Spinning, ort_unavailable_reason
from bench.backend import Artifact, Backend, BackendOptions, GradcamMaps, GradcamRequest, PrepareContext, Session

MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class OrtOptions(BackendOptions):
    spinning: Spinning = "run"  # intra-op threads spin within a run only (backends.onnxruntime.session says why)


class OrtFp32Backend(Backend):
    name = "ort"
    precisions = ("fp32",)
    devices = ("cpu", "cuda")
    Options = OrtOptions
    libraries = (*EXPORT_LIBRARIES, "onnxruntime")
    takes_onnx = True

    def unavailable_reason(self, device: str) -> str | None:
        return super().unavailable_reason(device) or ort_unavailable_reason(device)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        fp32_onnx(ctx, out_dir / MODEL_FILE)
        source = onnx_source(ctx)
        return {
            "weights": "embedded",
            "onnx_source": source,
            "notes": f"graph from {source}, spinning={OrtOptions.of(ctx.options).spinning}",
            "layer_tensors": layer_tensors(out_dir / MODEL_FILE),
        }

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        """Finite differences of ONNX Runtime's own fp32 head, cut at each layer's output tensor."""
        from backends.onnxruntime.gradcam_cut import onnx_gradcam

        return onnx_gradcam(artifact.directory / MODEL_FILE, request, artifact.meta.get("layer_tensors"))

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        spinning = OrtOptions.of(self.artifact_options(artifact)).spinning
        return OrtSession(artifact.directory / MODEL_FILE, device, threads, spinning)
