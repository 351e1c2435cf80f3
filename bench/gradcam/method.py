"""Grad-CAM for segmentation: the float reference (autograd) and the shared finite-difference consumer.

The class score is the reduction layer of segmentation Grad-CAM: y_c = sum over every output pixel of
the softmax probability of class c (a single-channel sigmoid model: class 1 = sum of sigmoid, class 0 =
sum of 1 - sigmoid). With A the feature layer's output (K channels, h x w), alpha_k^c =
(1/N) sum_ij dy_c/dA_k(i,j) with N = h*w, and the map is ReLU(sum_k alpha_k^c A_k), bilinearly upsampled
to the input size (align_corners=False). Maps are stored unnormalized, so that two backends' maps can
be compared in magnitude too; `normalize_for_display` is for figures only.

Two ways to get alpha, one way to make the map (`cam_from_alphas`):
- autograd through a torch module (`gradcam_autograd`): the float reference, torch-eager in fp32, bf16
  or fp16, and the fake-quant simulation of a quantized program;
- forward finite differences of a backend's own head (`finite_difference_cams`): sum_ij dy_c/dA_k(i,j)
  = d/de y_c(A + e*1_k), so K+1 batched head passes give every alpha for every class. Backends that can
  cut their graph at the feature layer hand over a `FeatureSplit`; `torch_feature_split` makes one for
  a float torch module (used to check finite differences against autograd).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import UsageError
from bench.gradcam.records import FeatureSplit
from bench.gradcam.tokens import first_output, like, spatial, with_first

REDUCTIONS = ("softmax", "sum")
REDUCED_PRECISIONS = (torch.float16, torch.bfloat16)
TAPS_ATTRIBUTE = "gradcam_taps"  # a model may map layer paths to modules here instead of get_submodule


class GradcamUnsupported(RuntimeError):
    """The backward pass cannot run in this precision or on this device; the caller writes a note."""


class UnsupportedProgram(GradcamUnsupported):
    """A graph a runtime's fake-quant rewrite cannot reproduce faithfully (e.g. dynamic quantization); a
    `GradcamUnsupported`, so the caller turns it into the row's note like any other."""


def class_scores(
    logits: torch.Tensor | np.ndarray, classes: Sequence[int], reduction: str = "softmax"
) -> torch.Tensor | np.ndarray:
    """The Grad-CAM reduction layer: (B, C, H, W) logits -> (B, len(classes)) float64 class scores.

    "softmax": y_c = sum over pixels of softmax(logits)_c; with C == 1 the model is a sigmoid model and
    class 1 = sum of sigmoid, class 0 = sum of (1 - sigmoid). "sum": y_c = sum over pixels of the raw
    logit of class c (no nonlinearity; for known-answer tests). A torch tensor stays differentiable (the
    reduction runs in float64 on top of whatever precision the model ran in); numpy in, numpy out.
    """
    as_numpy = isinstance(logits, np.ndarray)
    tensor = torch.from_numpy(np.asarray(logits)) if as_numpy else logits
    if tensor.ndim != 4:
        raise UsageError(f"Grad-CAM needs (B, C, H, W) logits, got shape {tuple(tensor.shape)}")
    if reduction not in REDUCTIONS:
        raise UsageError(f"unknown Grad-CAM reduction '{reduction}'; valid reductions: {', '.join(REDUCTIONS)}")
    channels = tensor.shape[1]
    valid = 2 if channels == 1 and reduction == "softmax" else channels
    if bad := [c for c in classes if not 0 <= int(c) < valid]:
        raise UsageError(
            f"Grad-CAM class {bad[0]} is out of range for a model with {channels} output "
            f"channel(s) (valid: 0..{valid - 1})"
        )
    wide = torch.as_tensor(tensor).to(torch.float64)
    columns = []
    for c in classes:
        if reduction == "sum":
            columns.append(wide[:, int(c)].sum(dim=(1, 2)))
        elif channels == 1:
            prob = torch.sigmoid(wide[:, 0])
            columns.append((prob if int(c) == 1 else 1.0 - prob).sum(dim=(1, 2)))
        else:
            columns.append(torch.softmax(wide, dim=1)[:, int(c)].sum(dim=(1, 2)))
    scores = torch.stack(columns, dim=1)
    return scores.detach().numpy() if as_numpy else scores


def _cams(features: torch.Tensor, alphas: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) features and (B, C, K) alphas -> (B, C, H, W) float64 maps."""
    weighted = torch.einsum("bck,bkhw->bchw", alphas.to(torch.float64), features.to(torch.float64))
    cams = torch.relu(weighted)
    if tuple(cams.shape[-2:]) != tuple(out_size):
        cams = F.interpolate(cams, size=tuple(out_size), mode="bilinear", align_corners=False)
    return torch.relu(cams)  # bilinear weights are non-negative; this only removes -0.0


def cam_from_alphas(
    features: np.ndarray | torch.Tensor, alphas: np.ndarray | torch.Tensor, out_size: tuple[int, int]
) -> np.ndarray:
    """ReLU(sum_k alpha_k^c A_k) for every class, bilinearly upsampled: (K,h,w), (C,K) -> (C,H,W) float32.

    Combined and upsampled in float64 whatever the features' precision, so that the only difference
    between two backends' maps is what their own arithmetic produced."""
    a = torch.as_tensor(np.asarray(features) if isinstance(features, np.ndarray) else features.detach().cpu())
    w = torch.as_tensor(np.asarray(alphas) if isinstance(alphas, np.ndarray) else alphas.detach().cpu())
    if a.ndim != 3 or w.ndim != 2 or w.shape[1] != a.shape[0]:
        raise UsageError(
            f"cam_from_alphas needs features (K, h, w) and alphas (C, K); got {tuple(a.shape)} and {tuple(w.shape)}"
        )
    return _cams(a[None], w[None], out_size)[0].numpy().astype(np.float32)


def normalize_for_display(cam: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] by its own maximum (an all-zero map stays zero). Display only: stored
    maps stay unnormalized so that divergence metrics see magnitudes."""
    cam = np.asarray(cam, dtype=np.float32)
    peak = cam.max(axis=(-2, -1), keepdims=True) if cam.size else np.zeros(cam.shape[:-2] + (1, 1), np.float32)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def layer_path(model: nn.Module, name: str) -> str:
    """A layer named by its alias in the model's `gradcam_layers` table (`encoder`, `aspp`, ...) or by
    its module path; the graph splits of the ONNX and FX backends need the path."""
    return dict(getattr(model, "gradcam_layers", {}) or {}).get(name, name)


def resolve_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module whose output is the feature layer: a tap the model declares, or `get_submodule`."""
    taps: Mapping[str, nn.Module] | None = getattr(model, TAPS_ATTRIBUTE, None)
    if taps is not None:
        if layer in taps:
            return taps[layer]
        valid = list(taps)
    else:
        try:
            return model.get_submodule(layer)
        except AttributeError:
            valid = [name for name, _ in model.named_modules() if name]
    shown = ", ".join(valid[-8:]) + (", ..." if len(valid) > 8 else "")
    raise UsageError(
        f"Grad-CAM layer '{layer}' is not a module of {type(model).__name__}; valid layers include: {shown or 'none'}"
    )


def _capture(
    modules: Mapping[str, nn.Module], store: dict[str, torch.Tensor], input_size: tuple[int, int]
) -> list[Any]:
    """Forward hooks that record each layer's output as a feature map A (B, K, h, w) and hand downstream
    a tensor computed from A: a clone of a feature map (a following in-place op, ReLU(inplace=True), then
    cannot overwrite the recorded A or its place in the autograd graph), or tokens (B, N, C) rebuilt from
    A's grid (bench/gradcam/tokens.py: the grid is inferred from the `input_size` (H, W)), so gradients
    reach A either way. A tuple output is explained by its first element."""

    def hook_for(name: str) -> Callable[..., Any]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            value = first_output(output)
            if not isinstance(value, torch.Tensor):
                raise UsageError(
                    f"Grad-CAM layer '{name}' must output a (B, K, h, w) feature map or (B, N, C) tokens "
                    f"(of a tuple, its first element), got {type(value).__name__}"
                )
            if name in store:  # a shared module (e.g. one MaxPool2d used at every level) has no single A
                raise UsageError(
                    f"Grad-CAM layer '{name}' runs more than once per forward pass; choose a module that runs once"
                )
            if torch.is_grad_enabled() and not value.requires_grad:  # nothing trainable upstream of A
                value = value.detach().requires_grad_(True)
            features, back = spatial(value, input_size, name)
            store[name] = features
            return with_first(output, back(features).clone())  # never a view of A: see above

        return hook

    return [module.register_forward_hook(hook_for(name)) for name, module in modules.items()]


def _as_dtype(model: nn.Module, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The model in `dtype` on `device`; a copy when it has to be cast (the caller's model is untouched)."""
    floats = [p for p in [*model.parameters(), *model.buffers()] if p.is_floating_point()]
    if all(p.dtype == dtype and p.device == device for p in floats):
        return model
    return copy.deepcopy(model).to(device=device, dtype=dtype)


def autograd_alphas(
    model: nn.Module, images: torch.Tensor, layers: Sequence[str], classes: Sequence[int], reduction: str = "softmax"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One batch through `model` (already in the images' dtype and device): (features {layer: (B,K,h,w)},
    alphas {layer: (B, len(classes), K)}). One gradient call per class, every layer at once; the class
    score is summed over the batch, which is exact because images do not interact in eval mode."""
    modules = {layer: resolve_layer(model, layer) for layer in layers}
    store: dict[str, torch.Tensor] = {}
    handles = _capture(modules, store, (images.shape[-2], images.shape[-1]))
    try:
        with torch.enable_grad():
            logits = model(images)
            missing = [layer for layer in layers if layer not in store]
            if missing:
                raise UsageError(f"Grad-CAM layer '{missing[0]}' did not run in the forward pass")
            scores = class_scores(logits, classes, reduction)
            features = [store[layer] for layer in layers]
            per_class = []
            for i in range(len(classes)):
                grads = torch.autograd.grad(
                    scores[:, i].sum(), features, retain_graph=i < len(classes) - 1, allow_unused=True
                )
                per_class.append([torch.zeros_like(f) if g is None else g for g, f in zip(grads, features)])
    finally:
        for handle in handles:
            handle.remove()
    alphas = {
        layer: torch.stack([per_class[i][j].mean(dim=(2, 3)) for i in range(len(classes))], dim=1).detach()
        for j, layer in enumerate(layers)
    }
    return {layer: store[layer].detach() for layer in layers}, alphas


def gradcam_autograd(
    model: nn.Module,
    images: np.ndarray,
    layers: Sequence[str],
    classes: Sequence[int],
    dtype: torch.dtype = torch.float32,
    batch_size: int = 4,
    device: str = "cpu",
    reduction: str = "softmax",
    channels_last: bool = False,
) -> dict[str, np.ndarray]:
    """Grad-CAM maps {layer: (N, len(classes), H, W) float32} by autograd in `dtype` (fp32, fp64, bf16,
    fp16), unnormalized. The model is cast (a copy) when its parameters are in another dtype. Raises
    `GradcamUnsupported` when the backward pass cannot run in that precision on that device."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise UsageError(f"Grad-CAM images must be (N, C, H, W), got shape {images.shape}")
    if not layers or not classes:
        raise UsageError("Grad-CAM needs at least one layer and one class")
    target = torch.device(device)
    net = _as_dtype(model, dtype, target).eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out_size = (images.shape[2], images.shape[3])
    maps: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(target, dtype)
        try:
            features, alphas = autograd_alphas(
                net, batch.contiguous(memory_format=memory_format), layers, classes, reduction
            )
        except RuntimeError as exc:  # kernels missing in a reduced precision; a real bug in fp32/fp64 propagates
            if dtype not in REDUCED_PRECISIONS:
                raise
            raise GradcamUnsupported(
                f"Grad-CAM cannot run in {str(dtype).removeprefix('torch.')} on "
                f"{target.type}: {str(exc).splitlines()[0]}"
            ) from exc
        for layer in layers:
            maps[layer].append(_cams(features[layer], alphas[layer], out_size).float().cpu().numpy())
    return {layer: np.concatenate(chunks) for layer, chunks in maps.items()}


def finite_difference_alphas(
    split: FeatureSplit, classes: Sequence[int], chunk: int = 32, reduction: str = "softmax"
) -> np.ndarray:
    """alpha (len(classes), K) from forward differences of the split's head along per-channel shifts.

    Each call to `head_shifted` carries the unshifted entry (-1) next to up to `chunk - 1` shifted
    channels, and every difference is taken against the base of its own call: a backend whose kernels
    depend on the batch size then still differences like against like."""
    features = np.asarray(split.features)
    if features.ndim != 3:
        raise UsageError(f"FeatureSplit.features must be (K, h, w), got shape {features.shape}")
    channels, height, width = features.shape
    step = np.broadcast_to(np.asarray(split.step, dtype=np.float64), (channels,))
    if chunk < 2:
        raise UsageError(f"finite-difference chunk must be at least 2 (the base and one channel), got {chunk}")
    gains = np.zeros((channels, len(classes)))
    for start in range(0, channels, chunk - 1):
        shifted = np.arange(start, min(start + chunk - 1, channels))
        logits = split.head_shifted(np.concatenate([[-1], shifted]).astype(np.int64))
        if len(logits) != len(shifted) + 1:
            raise RuntimeError(f"head_shifted returned {len(logits)} rows for {len(shifted) + 1} requested")
        scores = class_scores(np.asarray(logits, dtype=np.float64), classes, reduction)
        gains[shifted] = scores[1:] - scores[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = np.where(step[:, None] != 0, gains / (step[:, None] * height * width), 0.0)
    return alphas.T


def finite_difference_cams(
    split: FeatureSplit, classes: Sequence[int], out_size: tuple[int, int], chunk: int = 32, reduction: str = "softmax"
) -> np.ndarray:
    """Grad-CAM maps (len(classes), H, W) float32 of one image from a backend's split graph."""
    return cam_from_alphas(
        np.asarray(split.features, dtype=np.float64),
        finite_difference_alphas(split, classes, chunk, reduction),
        out_size,
    )


def torch_feature_split(model: nn.Module, image: torch.Tensor, layer: str, step: float | np.ndarray) -> FeatureSplit:
    """A float `FeatureSplit` for a torch module: the head reruns the whole model on the image repeated to
    the batch size, with the layer's output replaced (forward hook) by the shifted features. The model
    runs in its own dtype; `step` is a float shift per channel (scalar or (K,)), so the finite-difference
    error is O(step)."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise UsageError(f"torch_feature_split takes one image (1, C, H, W), got shape {tuple(image.shape)}")
    module = resolve_layer(model, layer)
    store: dict[str, torch.Tensor] = {}
    handles = _capture({layer: module}, store, (image.shape[-2], image.shape[-1]))
    try:
        with torch.no_grad():
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    base = store[layer][0].detach().clone()  # (K, h, w)
    steps = np.broadcast_to(np.asarray(step, dtype=np.float64), (base.shape[0],)).copy()
    shifts = torch.as_tensor(steps, dtype=base.dtype, device=base.device)

    def head_shifted(channels: np.ndarray) -> np.ndarray:
        channels = np.asarray(channels, dtype=np.int64)
        batch = base.expand(len(channels), *base.shape).clone()
        for row, k in enumerate(channels):
            if k >= 0:
                batch[row, k] += shifts[k]
        handle = module.register_forward_hook(lambda m, i, o: with_first(o, like(batch, first_output(o))))
        try:
            with torch.no_grad():
                return model(image.expand(len(channels), *image.shape[1:])).detach().cpu().numpy()
        finally:
            handle.remove()

    return FeatureSplit(
        features=base.cpu().numpy(),
        step=steps,
        head_shifted=head_shifted,
        meta={"layer": layer, "dtype": str(base.dtype).removeprefix("torch."), "kind": "torch float"},
    )
