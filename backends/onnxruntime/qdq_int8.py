"""ONNX Runtime, static int8 quantization in QDQ format.

Configured as ONNX Runtime's quantization guide recommends for CPU: `quant_pre_process` (shape
inference and graph optimization) first, then `quantize_static` with QDQ format and per-channel int8
weights, calibrated on the suite's calibration split. Preset `cpu` (default) uses uint8 activations
(U8S8, the layout x86 CPUs fuse into int8 kernels); preset `tensorrt` makes the symmetric S8S8 graph
(all zero points 0) that TensorRT consumes — on CPU it stays partly in float, which coverage shows.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.onnx.export import EXPORT_LIBRARIES, fp32_onnx, layer_tensors, onnx_source
from backends.onnxruntime.coverage import optimized_coverage
from backends.onnxruntime.quantize import (
    CalibrationMethod,
    Preset,
    QuantFormatName,
    op_types_problem,
    parse_op_types,
    quantize_qdq,
)
from backends.onnxruntime.session import OrtSession, Spinning, ort_unavailable_reason
from bench.backend import (
    Artifact,
    Backend,
    BackendOptions,
    GradcamMaps,
    GradcamRequest,
    PrepareContext,
    QuantLayer,
    Session,
    parse_float_layers,
)

MODEL_FILE = "model.int8.onnx"


@dataclass(frozen=True)
class OrtQdqOptions(BackendOptions):
    calibration: CalibrationMethod = "minmax"
    preset: Preset = "cpu"
    spinning: Spinning = "run"  # intra-op threads spin within a run only (backends.onnxruntime.session says why)
    float_layers: str = ""  # module paths (or node names) kept in float: quantize_static's nodes_to_exclude
    # QDQ pairs that ONNX Runtime fuses when the session is made, or QLinear* operators written into the
    # file (backends.onnxruntime.quantize); the same arithmetic, and which runs faster is measured (docs/backends.md)
    format: QuantFormatName = "qdq"
    # ONNX op types to quantize, comma-separated (quantize_static's op_types_to_quantize), checked against ONNX
    # Runtime's registry for the format; empty: its default, every type it can. On a transformer, `Conv` alone
    # leaves the attention MatMuls, Add, Mul, Softmax ... in float (docs/backends.md)
    op_types: str = ""
    # Weights in 7 bits (quantize_static's reduce_range), as ONNX Runtime's guide advises for CPUs without
    # VNNI: their int8 kernels sum pairs of u8 x s8 products in int16 and saturate (docs/backends.md)
    reduce_range: bool = False

    def check(self) -> str | None:
        return op_types_problem(self.op_types, self.format)


class OrtQdqInt8Backend(Backend):
    name = "ort-qdq-int8"
    precisions = ("int8",)
    devices = ("cpu", "cuda")
    Options = OrtQdqOptions
    float_counterparts = (("ort", "fp32"),)
    libraries = (*EXPORT_LIBRARIES, "onnxruntime")
    takes_onnx = True

    def unavailable_reason(self, device: str) -> str | None:
        return super().unavailable_reason(device) or ort_unavailable_reason(device)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        options = OrtQdqOptions.of(ctx.options)
        with tempfile.TemporaryDirectory(prefix="segbench-onnx-") as tmp:
            fp32 = fp32_onnx(ctx, Path(tmp) / "model.onnx")
            done = quantize_qdq(
                fp32,
                out_dir / MODEL_FILE,
                ctx.calibration,
                preset=options.preset,
                calibration_method=options.calibration,
                float_layers=parse_float_layers(options.float_layers),
                quant_format=options.format,
                op_types=parse_op_types(options.op_types),
                reduce_range=options.reduce_range,
            )
            tensors = layer_tensors(fp32)  # from the float export: quantization drops or rewrites nodes
        source = onnx_source(ctx)
        kept = parse_float_layers(options.float_layers)
        op_types = parse_op_types(options.op_types)
        return {
            **done,
            "onnx_source": source,
            "layer_tensors": tensors,
            "coverage": optimized_coverage(out_dir / MODEL_FILE),
            "notes": f"{options.preset} preset, {options.format} format, {options.calibration} calibration, "
            f"per-channel {'7-bit (reduce_range) ' if options.reduce_range else ''}weights, "
            f"graph from {source}, spinning={options.spinning}"
            + (f", only op types {'/'.join(op_types)} quantized (op_types)" if op_types else "")
            + (f", {len(kept)} layer(s) kept in float as asked (float_layers)" if kept else ""),
        }

    def quantizable_layers(self, ctx: PrepareContext) -> list[QuantLayer]:
        from backends.onnx.layers import weighted_nodes

        with tempfile.TemporaryDirectory(prefix="segbench-onnx-") as tmp:
            return weighted_nodes(fp32_onnx(ctx, Path(tmp) / "model.onnx"))

    def layer_sqnr(self, ctx: PrepareContext, images: np.ndarray) -> dict[str, float]:
        """onnxruntime's qdq_loss_debug: the preprocessed float graph and the all-int8 QDQ graph, both with
        every intermediate tensor as an output, run on `images`; `xmodel_err` per layer output."""
        from backends.onnx.layers import layer_outputs
        from backends.onnxruntime.layer_sqnr import onnx_layer_sqnr
        from bench.onnx.names import INPUT_NAME

        options = OrtQdqOptions.of(ctx.options)
        with tempfile.TemporaryDirectory(prefix="segbench-onnx-") as tmp:
            folder = Path(tmp)
            fp32 = fp32_onnx(ctx, folder / "model.onnx")
            quantize_qdq(
                fp32,
                folder / MODEL_FILE,
                ctx.calibration,
                preset=options.preset,
                calibration_method=options.calibration,
                preprocessed_copy=folder / "model.pre.onnx",
                reduce_range=options.reduce_range,
            )
            outputs = layer_outputs(folder / "model.pre.onnx")
            return onnx_layer_sqnr(folder / "model.pre.onnx", folder / MODEL_FILE, images, INPUT_NAME, outputs)

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        """Finite differences of ONNX Runtime's own int8 head, cut at the 8-bit codes of each layer's output
        (shifted by `request.steps` quantization steps), so the maps come from the deployed arithmetic;
        and autograd through the QDQ graph's fake-quant simulation (the second method)."""
        from backends.onnxruntime.gradcam_cut import onnx_gradcam

        return onnx_gradcam(
            artifact.directory / MODEL_FILE, request, artifact.meta.get("layer_tensors"), quantized=True
        )

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        spinning = OrtQdqOptions.of(self.artifact_options(artifact)).spinning
        return OrtSession(artifact.directory / MODEL_FILE, device, threads, spinning)
