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
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import FLOAT_STEP, SplitUnavailable, check_head, float_split

FLOAT_RTOL = 1e-5  # float cut: allowed |head - full| relative to max |logits|


class OnnxFeatureSplitter:
    """A `GraphCut` of one ONNX graph at one feature tensor; `split(image)` cuts one image."""

    def __init__(
        self,
        model_path: Path,
        tensor_name: str,
        threads: int = 1,
        steps: int = 4,
        device: str = "cpu",
        float_step: float = FLOAT_STEP,
    ) -> None:
        if int(steps) != steps or steps < 1:
            raise SplitUnavailable(
                f"the finite-difference step must be a positive whole number of quantization steps, got {steps}"
            )
        self.steps, self.float_step = int(steps), float_step
        try:
            self.graph = GraphCut(model_path, tensor_name, threads, device)
        except CutUnavailable as exc:
            raise SplitUnavailable(str(exc)) from exc
        self.path, self.tensor, self.cut, self.quant = Path(model_path), tensor_name, self.graph.cut, self.graph.quant
        self.rows_checked = False

    @property
    def sides(self) -> list[str]:
        return self.graph.sides

    @property
    def head_model(self) -> Any:
        return self.graph.head_model

    def full_logits(self, image: np.ndarray) -> np.ndarray:
        return self.graph.full(image)

    def split(self, image: np.ndarray, steps: int | None = None) -> FeatureSplit:
        """Cut the forward pass of one (1, C, H, W) image at a step size (default: the splitter's); checks
        the unshifted head against the full model, and on the first image that identical rows agree."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 4 or image.shape[0] != 1:
            raise SplitUnavailable(f"onnx_feature_split takes one image (1, C, H, W), got shape {image.shape}")
        steps = self.steps if steps is None else int(steps)
        if steps < 1:
            raise SplitUnavailable(f"the finite-difference step must be a positive whole number, got {steps}")
        values = self.graph.body(image)
        cut = values[self.cut]
        if cut.ndim != 4:
            raise SplitUnavailable(f"'{self.tensor}' is not a (1, K, h, w) feature map (shape {cut.shape})")

        def run_head(batch: np.ndarray) -> np.ndarray:
            return self.graph.head(batch, values)

        if self.quant is not None:
            split = self._codes_split(cut[0], run_head, steps)
        else:
            split = self._float_split(cut[0], run_head, steps)
        self._check(image, split)
        if not self.rows_checked:
            self._check_rows(split)
        if self.graph.sides_per_row:
            split.meta["kind"] = f"{split.meta.get('kind', '')}, side inputs computed per row (they encode the batch)"
        return split

    def _check_rows(self, split: FeatureSplit) -> None:
        """Identical rows must give identical logits; if they do not, compute the side inputs per row."""
        from bench.gradcam.split import check_rows_independent

        try:
            check_rows_independent(split, self.tensor)
        except SplitUnavailable:
            if self.graph.sides_per_row:
                raise
            self.graph.sides_per_row = True
            check_rows_independent(split, self.tensor)
        self.rows_checked = True

    def _codes_split(self, codes: np.ndarray, run_head: Any, steps: int) -> FeatureSplit:
        q = self.quant
        assert q is not None  # a codes split is made only for a quantized cut
        channels = codes.shape[0]
        scale = np.broadcast_to(q["scale"], (channels,)).astype(np.float32)
        zero = np.broadcast_to(q["zero_point"], (channels,))
        features = (codes.astype(np.int64) - zero[:, None, None]).astype(np.float32) * scale[:, None, None]
        moved = np.clip(codes.astype(np.int64) + steps, q["low"], q["high"]).astype(q["dtype"])
        clipped = float(np.mean(moved.astype(np.int64) - codes.astype(np.int64) != steps))

        def head_shifted(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, dtype=np.int64)
            batch = np.repeat(codes[None], len(rows), axis=0)
            for r, k in enumerate(rows):
                if k >= 0:
                    batch[r, k] = moved[k]
            return run_head(batch)

        kind = f"{np.dtype(q['dtype']).name} codes of {self.tensor}, shift {steps} steps"
        return FeatureSplit(
            features=features,
            step=steps * scale.astype(np.float64),
            head_shifted=head_shifted,
            meta={
                "kind": kind,
                "tensor": self.tensor,
                "cut": self.cut,
                "clipped": clipped,
                "codes": codes,
                "shifted_codes": moved,
                "sides": list(self.sides),
            },
        )

    def _float_split(self, features: np.ndarray, run_head: Any, steps: int) -> FeatureSplit:
        meta: dict[str, object] = {"cut": self.cut, "sides": list(self.sides)}
        return float_split(features, run_head, steps, self.tensor, self.float_step, meta)

    def _check(self, image: np.ndarray, split: FeatureSplit) -> None:
        """The unshifted head must be the full model: exactly for codes, to float rounding for a float cut."""
        full = self.full_logits(image)
        limit = 0.0 if self.quant is not None else FLOAT_RTOL * max(1.0, float(np.max(np.abs(full))))
        check_head(split, full, self.tensor, self.path.name, limit)


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
