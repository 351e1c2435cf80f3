"""Finite-difference Grad-CAM on ONNX Runtime's own head: the graph cut at the feature tensor
(`backends.onnxruntime.graph_cut.GraphCut`), shifted there, and run past the cut.

The feature layer's output tensor A is found by name (`backends.onnx.export.layer_tensors`, stored with the
artifact because quantization rewrites nodes but keeps tensor names). The shift:

- at 8-bit codes (QDQ int8 graph): channel k's codes move by `steps` whole quantization steps (clipped
  to the code range), so every head pass sees codes the deployed graph could produce;
- at a float A (or an A nothing quantizes): a small float step (`FLOAT_STEP` x the channel's standard
  deviation, scaled by steps / `BASE_STEPS`, so "2, 4, 8 steps" mean the same halving and doubling on
  both kinds of cut); the finite-difference error is then O(step).

Side inputs of the head are computed once per image and repeated along the batch. Where that is wrong
(ONNX MaxPool's indices are flat over the whole tensor, batch included, so a decoder's MaxUnpool or
ScatterND fed batch-1 indices writes every row into row 0), identical rows give different logits; the
splitter then computes the side inputs from the image repeated to the batch size instead (one body
pass per head call) and checks again.

For every image the unshifted head must reproduce the full model's logits (exactly for a cut at
codes), or the split raises instead of producing maps of some other arithmetic.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from backends.onnxruntime.graph_cut import CutUnavailable, GraphCut
from bench.backend import GradcamMaps, GradcamRequest
from bench.gradcam.cut_splitter import CodeGrid, FeatureSplitter
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import FLOAT_STEP, SplitUnavailable

FLOAT_RTOL = 1e-5  # float cut: allowed |head - full| relative to max |logits|


class OnnxFeatureSplitter(FeatureSplitter):
    """A `GraphCut` of one ONNX graph at one feature tensor; `split(image)` cuts one image (the shared
    `FeatureSplitter`, run on ONNX Runtime sessions)."""

    WHAT = "onnx_feature_split"
    STEP_UNIT = " of quantization steps"
    HEAD_RTOL = FLOAT_RTOL
    EXACT_CODES = True  # the head runs the deployed QDQ kernels on the deployed codes

    def __init__(
        self,
        model_path: Path,
        tensor_name: str,
        threads: int = 1,
        steps: int = 4,
        device: str = "cpu",
        float_step: float = FLOAT_STEP,
    ) -> None:
        super().__init__(model_path, tensor_name, steps, float_step)
        try:
            self.graph = GraphCut(model_path, tensor_name, threads, device)
        except CutUnavailable as exc:
            raise SplitUnavailable(str(exc)) from exc
        self.cut, self.quant = self.graph.cut, self.graph.quant

    @property
    def sides(self) -> list[str]:
        return self.graph.sides

    @property
    def head_model(self) -> Any:
        return self.graph.head_model

    def full_logits(self, image: np.ndarray) -> np.ndarray:
        return self.graph.full(image)

    def _run_body(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        values = self.graph.body(image)
        return values[self.cut], values

    def _run_head(self, batch: np.ndarray, sides: dict[str, np.ndarray]) -> np.ndarray:
        return self.graph.head(batch, sides)

    def _grid(self, cut: np.ndarray) -> CodeGrid:
        """The QuantizeLinear's codes as they are: the head reads them in the deployed dtype."""
        q = self.quant
        assert q is not None  # a codes split is made only for a quantized cut
        channels = cut.shape[0]
        if self.tokens and q["scale"].size > 1:  # axis 1 of tokens is the token axis, not the channels
            raise SplitUnavailable(f"the tokens '{self.tensor}' are quantized per token, not per tensor")
        scale = np.broadcast_to(q["scale"], (channels,)).astype(np.float32)
        zero = np.broadcast_to(q["zero_point"], (channels,))
        features = (cut.astype(np.int64) - zero[:, None, None]).astype(np.float32) * scale[:, None, None]
        dtype = q["dtype"]
        return CodeGrid(
            codes=cut,
            low=q["low"],
            high=q["high"],
            step=scale.astype(np.float64),
            features=features,
            feed=lambda codes: codes.astype(dtype),
            label=f"{np.dtype(dtype).name} codes",
            record_codes=True,
        )

    def _rows_fallback(self) -> bool:
        """Compute the side inputs from the image repeated to the batch (they encode the batch position)."""
        if self.graph.sides_per_row:
            return False
        self.graph.sides_per_row = True
        return True

    def _row_note(self) -> str | None:
        return "side inputs computed per row (they encode the batch)" if self.graph.sides_per_row else None

    def _meta(self) -> dict[str, object]:
        return {"cut": self.cut, **super()._meta()}


def onnx_feature_split(
    model_path: Path, tensor_name: str, image: np.ndarray, threads: int = 1, steps: int = 4, device: str = "cpu"
) -> FeatureSplit:
    """One image's forward pass of an ONNX graph cut at `tensor_name` (see the module docstring)."""
    return OnnxFeatureSplitter(model_path, tensor_name, threads, steps, device).split(image)


def resolve_tensor(model_path: Path, layer: str, layer_tensors: dict[str, str] | None) -> str:
    """The ONNX tensor for a layer: the stored mapping (from the export), else the mapping read from the
    file's own metadata, else the layer itself when it names a tensor of the graph."""
    from backends.onnx.export import layer_tensors as read_mapping

    mapping = layer_tensors if layer_tensors else read_mapping(model_path)
    if layer in mapping:
        return mapping[layer]
    import onnx

    names = {o for n in onnx.load(str(model_path), load_external_data=False).graph.node for o in n.output}
    if layer in names:
        return layer
    raise SplitUnavailable(
        f"no ONNX tensor is known for layer '{layer}' (the graph has no exporter scope "
        f"metadata for it and no tensor of that name)"
    )


def onnx_gradcam(
    model_path: Path,
    request: GradcamRequest,
    layer_tensors: dict[str, str] | None,
    chunk: int = 32,
    quantized: bool = False,
) -> list[GradcamMaps]:
    """Finite-difference Grad-CAM of an ONNX Runtime backend's own graph, every requested layer, at the
    request's step and at each of its floor steps (in that order); for a `quantized` (QDQ) graph also
    fake-quant autograd through its simulation (`backends.onnxruntime.fakequant`), as the request asks."""
    from bench.gradcam.split import split_gradcam

    def splitter_for(layer: str) -> Any:
        tensor = resolve_tensor(model_path, layer, layer_tensors)
        return OnnxFeatureSplitter(model_path, tensor, request.threads, request.steps, request.device).split

    found: list[GradcamMaps] = []
    if "finite-difference" in request.methods or not quantized:  # a float graph has no fake-quant to run
        splits = split_gradcam(
            request.images,
            request.layers,
            request.classes,
            splitter_for,
            prefix="ONNX Runtime head cut at the feature tensor",
            chunk=chunk,
            steps=(request.steps, *request.floor_steps),
            cut="onnx",
        )
        found += [replace(maps, vs_deployed_max_abs=0.0) for maps in splits]  # the deployed session's own kernels
    if quantized and "fake-quant" in request.methods:
        found.append(_fakequant_maps(model_path, request, layer_tensors))
    if not found:
        kind = "QDQ" if quantized else "float"
        raise SplitUnavailable(f"ONNX Runtime's {kind} graph cannot be explained by {', '.join(request.methods)}")
    return found


def _fakequant_maps(model_path: Path, request: GradcamRequest, layer_tensors: dict[str, str] | None) -> GradcamMaps:
    """Autograd through the QDQ graph's fake-quant simulation; a graph it cannot simulate gives no maps
    and a note (the finite-difference maps stand)."""
    import time

    import torch

    from backends.onnxruntime.fakequant import OnnxFakeQuant, simulation_vs_session
    from bench.gradcam.method import GradcamUnsupported, gradcam_autograd

    start = time.perf_counter()
    torch.set_num_threads(request.threads)
    try:
        taps: dict[str, str] = {}
        for layer in request.layers:
            try:
                taps[layer] = resolve_tensor(model_path, layer, layer_tensors)
            except SplitUnavailable:
                continue
        if not taps:
            raise SplitUnavailable("no requested layer has a tensor in the graph")
        simulated = OnnxFakeQuant(model_path, taps).eval()
        tapped = tuple(layer for layer in taps if layer not in simulated.missing)
        if not tapped:
            raise SplitUnavailable(f"no tensor of {', '.join(taps)} is left in the QDQ graph")
        drift, scale = simulation_vs_session(simulated, model_path, request.images, request.threads)
        maps = gradcam_autograd(simulated, request.images, tapped, request.classes)
    except GradcamUnsupported as exc:
        return GradcamMaps.without_maps("fake-quant", f"fake-quant not possible: {exc}")
    except Exception as exc:  # the second method must never take the primary's maps down with it
        return GradcamMaps.failed("fake-quant", exc)
    return GradcamMaps(
        maps=maps,
        method="fake-quant",
        seconds_per_image=(time.perf_counter() - start) / max(len(request.images), 1),
        notes=f"fake-quant simulation of the QDQ graph (its scales and zero points, int8 weights); "
        f"max |logit diff| from ONNX Runtime's session {drift:.3g}",
        vs_deployed_max_abs=drift,
        vs_deployed_scale=scale,
    )
