"""OpenVINO on the CPU: `openvino` (fp32, or bf16 where the CPU has it) and `openvino-int8` (NNCF
post-training quantization).

Both start from the same float ONNX graph as the ONNX Runtime backends (segbench's export or a user's
`--onnx`), converted with `ov.convert_model` and reshaped to the static input size; the artifact is the
saved IR (`model.xml` + `model.bin`, both counted in the size). `openvino-int8` quantizes that model with
`nncf.quantize` on the suite's calibration split, so ORT QDQ and OpenVINO int8 differ only in the
quantizer and the runtime. Which layers run in int8 is read from the compiled model's runtime graph
(backends/openvino/coverage.py). Sessions follow OpenVINO's latency recommendations
(backends/openvino/runtime.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backends.onnx.export import EXPORT_LIBRARIES, fp32_onnx, layer_tensors, onnx_source
from backends.openvino.quantize import ModelTypeName, NncfPreset
from backends.openvino.runtime import XML_FILE, nncf_unavailable_reason, openvino_unavailable_reason
from bench.backend import (
    AccuracyControlResult,
    Artifact,
    Backend,
    BackendOptions,
    GradcamMaps,
    GradcamRequest,
    PrepareContext,
    QuantLayer,
    Session,
    check_float_layers,
    parse_float_layers,
)

FloatPrecision = Literal["f32", "bf16"]


def _float_model(ctx: PrepareContext) -> tuple[Any, list[QuantLayer], dict[str, str], dict[str, str]]:
    """The float OpenVINO model both backends start from (segbench's export or the user's --onnx), the
    layers NNCF can quantize (named by module path), the module path -> tensor map Grad-CAM cuts at, and
    the ONNX node -> layer map a profile names OpenVINO's operations by (they keep the ONNX node names)."""
    from backends.onnx.layers import weighted_nodes
    from backends.onnx.node_layers import onnx_node_layers
    from backends.openvino.runtime import read_onnx

    with tempfile.TemporaryDirectory(prefix="segbench-ov-") as tmp:
        onnx_path = fp32_onnx(ctx, Path(tmp) / "model.onnx")
        model = read_onnx(onnx_path, ctx.input_shape)
        return model, weighted_nodes(onnx_path), layer_tensors(onnx_path), onnx_node_layers(onnx_path)


def _session(artifact: Artifact, threads: int, default_precision: str) -> Session:
    """The compiled IR at the artifact's precision, with the maps a profile names its layers by."""
    from backends.openvino.runtime import OpenVinoSession

    meta = artifact.meta
    return OpenVinoSession(
        artifact.directory / XML_FILE,
        threads,
        str(meta.get("precision", default_precision)),
        meta.get("layer_tensors"),
        meta.get("node_layers"),
    )


class OpenVinoFp32Backend(Backend):
    """The float IR; precision `bf16` sets OpenVINO's inference precision hint to bf16 (AMX/AVX-512 BF16)."""

    name = "openvino"
    precisions = ("fp32", "bf16")
    devices = ("cpu",)
    libraries = (*EXPORT_LIBRARIES, "openvino")
    takes_onnx = True

    def unavailable_reason(self, device: str) -> str | None:
        return super().unavailable_reason(device) or openvino_unavailable_reason(device)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        from backends.openvino.runtime import save_ir

        model, _, tensors, nodes = _float_model(ctx)
        save_ir(model, out_dir)
        return {
            "precision": ctx.precision,
            "onnx_source": onnx_source(ctx),
            "layer_tensors": tensors,
            "node_layers": nodes,
            "notes": f"IR from {onnx_source(ctx)}, inference precision {ctx.precision}",
        }

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        """Finite differences of OpenVINO's own compiled head, the IR cut at each layer's output tensor."""
        from backends.openvino.gradcam_cut import openvino_gradcam

        precision = str(artifact.meta.get("precision", "fp32"))
        return openvino_gradcam(artifact.directory / XML_FILE, request, artifact.meta.get("layer_tensors"), precision)

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return _session(artifact, threads, "fp32")


@dataclass(frozen=True)
class OpenVinoInt8Options(BackendOptions):
    preset: NncfPreset = "performance"  # NNCF's: symmetric (performance) or asymmetric activations (mixed)
    subset_size: int = 0  # calibration images NNCF uses; 0: the whole calibration split
    fast_bias_correction: bool = True  # NNCF's recommended default
    # Precision of the layers that stay in float. f32 by default, as in every other int8 backend (OpenVINO's
    # own default on a CPU with AMX or AVX-512 BF16 is bf16).
    float_precision: FloatPrecision = "f32"
    float_layers: str = ""  # module paths kept in float: nncf.IgnoredScope
    # An int8 IR to deploy as it is (its .xml, the .bin beside it) instead of quantizing here: the model
    # NNCF's accuracy control returned, which `segbench tune` saves under a name holding its content hash.
    ir: str = ""
    # NNCF's model type: "transformer" is nncf.ModelType.TRANSFORMER (SmoothQuant, no FakeQuantize on Add,
    # MVN and other normalization arithmetic, attention's output kept float: backends/openvino/quantize.py)
    model_type: ModelTypeName = ""

    def check(self) -> str | None:
        if self.subset_size < 0:
            return "subset_size must be 0 (all) or positive"
        if self.ir:
            xml = Path(self.ir)
            if xml.suffix != ".xml" or not xml.is_file() or not xml.with_suffix(".bin").is_file():
                return f"ir={self.ir} is not an OpenVINO IR; expected an existing .xml file with its .bin beside it"
            if self.float_layers:
                return "ir and float_layers exclude each other (the IR is deployed as it is)"
        return None


class OpenVinoInt8Backend(Backend):
    name = "openvino-int8"
    precisions = ("int8",)
    devices = ("cpu",)
    Options = OpenVinoInt8Options
    float_counterparts = (("openvino", "fp32"),)
    libraries = (*EXPORT_LIBRARIES, "openvino", "nncf")
    takes_onnx = True

    def unavailable_reason(self, device: str) -> str | None:
        return super().unavailable_reason(device) or openvino_unavailable_reason(device) or nncf_unavailable_reason()

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        from backends.openvino.coverage import operation_types, runtime_coverage
        from backends.openvino.quantize import nncf_quantize, smooth_quant_scales, weighted_operations
        from backends.openvino.runtime import compile_model, save_ir

        options = OpenVinoInt8Options.of(ctx.options)
        kept = parse_float_layers(options.float_layers)
        model, layers, tensors, nodes = _float_model(ctx)
        if options.ir:
            return self._given_ir(Path(options.ir), out_dir, options, tensors, nodes, onnx_source(ctx))
        check_float_layers(self.name, kept, layers)
        chosen = [layer for layer in layers if layer.name in kept or layer.node in kept]
        ignored = [name for names in weighted_operations(model, chosen).values() for name in names]
        quantized = nncf_quantize(
            model,
            ctx.calibration,
            preset=options.preset,
            subset_size=options.subset_size,
            fast_bias_correction=options.fast_bias_correction,
            ignored=ignored,
            model_type=options.model_type,
        )
        path = save_ir(quantized, out_dir)
        coverage = runtime_coverage(compile_model(path, 1, options.float_precision), operation_types(quantized))
        used = options.subset_size or len(ctx.calibration)
        return {
            "precision": options.float_precision,
            "onnx_source": onnx_source(ctx),
            "layer_tensors": tensors,
            "node_layers": nodes,
            "ignored_operations": ignored,
            "model_type": options.model_type or "default",
            "smooth_quant_scales": smooth_quant_scales(quantized),
            "coverage": coverage,
            "notes": f"NNCF {options.preset} preset"
            + (f", model type {options.model_type}" if options.model_type else "")
            + f", {min(used, len(ctx.calibration))} calibration images, "
            f"fast_bias_correction={'on' if options.fast_bias_correction else 'off'}, float layers in "
            f"{options.float_precision}, IR from {onnx_source(ctx)}"
            + (f", {len(kept)} layer(s) kept in float as asked (float_layers)" if kept else ""),
        }

    def _given_ir(
        self,
        xml: Path,
        out_dir: Path,
        options: OpenVinoInt8Options,
        tensors: dict[str, str],
        nodes: dict[str, str],
        source: str,
    ) -> dict[str, Any]:
        import shutil

        import openvino as ov

        from backends.openvino.coverage import operation_types, runtime_coverage
        from backends.openvino.runtime import BIN_FILE, compile_model

        shutil.copyfile(xml, out_dir / XML_FILE)
        shutil.copyfile(xml.with_suffix(".bin"), out_dir / BIN_FILE)
        compiled = compile_model(out_dir / XML_FILE, 1, options.float_precision)
        return {
            "precision": options.float_precision,
            "onnx_source": source,
            "layer_tensors": tensors,
            "node_layers": nodes,
            "coverage": runtime_coverage(compiled, operation_types(ov.Core().read_model(str(out_dir / XML_FILE)))),
            "notes": f"the int8 IR {xml.name} deployed as given (ir option), float layers in {options.float_precision}",
        }

    def accuracy_control(
        self,
        ctx: PrepareContext,
        images: np.ndarray,
        score: Callable[[np.ndarray, np.ndarray], float],
        max_drop: float,
        out_dir: Path,
    ) -> AccuracyControlResult:
        """NNCF's accuracy control on the same float IR and calibration images as `prepare`, with this
        backend's NNCF options; its model is saved in `out_dir` and deployed through the `ir` option."""
        from backends.openvino.accuracy_control import accuracy_control

        options = OpenVinoInt8Options.of(ctx.options)
        model, layers, _, _ = _float_model(ctx)
        return accuracy_control(
            model,
            layers,
            ctx.calibration,
            images,
            score,
            max_drop,
            out_dir,
            preset=options.preset,
            subset_size=options.subset_size,
            fast_bias_correction=options.fast_bias_correction,
            model_type=options.model_type,
        )

    def quantizable_layers(self, ctx: PrepareContext) -> list[QuantLayer]:
        from backends.onnx.layers import weighted_nodes

        with tempfile.TemporaryDirectory(prefix="segbench-ov-") as tmp:
            return weighted_nodes(fp32_onnx(ctx, Path(tmp) / "model.onnx"))

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        """Finite differences of OpenVINO's own int8 head, cut in front of the FakeQuantize that quantizes
        each layer's output and shifted by whole quantization steps of it."""
        from backends.openvino.gradcam_cut import openvino_gradcam

        precision = str(artifact.meta.get("precision", "f32"))
        return openvino_gradcam(artifact.directory / XML_FILE, request, artifact.meta.get("layer_tensors"), precision)

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return _session(artifact, threads, "f32")
