"""The loop shared by backends whose graph can be cut at the feature layer (ONNX Runtime, FX and PT2E int8).

A backend supplies, per layer, a function that cuts its own graph for one image at a given step size
(`FeatureSplit`); this module turns those splits into Grad-CAM maps with the shared finite-difference
code, once per step size (the first is the primary, the others measure the method's own noise), and
collects, per layer, either the maps or the reason the graph could not be cut there. A layer that
cannot be cut is left out (with its reason in the notes) rather than explained by the float model,
which would hide the very drift the maps are meant to show.

Before any map is made, each layer's head is checked on the first image with the unshifted features
repeated along the batch: every row must give the same logits. A head whose rows interact (a side
input that encodes the batch position, as ONNX's flat max-pool indices do, repeated from a batch-1
pass) would difference the base against garbage and produce maps of nothing; it raises instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.backend import GradcamMaps
from bench.gradcam.method import GradcamUnsupported, finite_difference_cams
from bench.gradcam.records import FeatureSplit

METHOD = "finite-difference"
FLOAT_STEP = 1e-2  # float cut at BASE_STEPS: shift = FLOAT_STEP * std of the channel (floored, see `float_steps`)
BASE_STEPS = 4  # the step size at which a float cut shifts by FLOAT_STEP x std
ROW_CHECK_RTOL = 1e-5  # identical rows of one head call: allowed |difference| relative to max |logit|

SplitImage = Callable[[np.ndarray, int], FeatureSplit]


class SplitUnavailable(GradcamUnsupported):
    """The backend's graph cannot be cut at this layer (no such tensor, feature stays float where
    codes were expected, ...); the message is one line for the row's notes."""


@dataclass
class SplitStats:
    """What the splits of one layer looked like, summarized into the notes."""

    kind: str = ""
    clipped: list[float] = field(default_factory=list)  # fraction of shifted codes clipped, per image


def float_steps(features: np.ndarray, relative: float) -> np.ndarray:
    """Per-channel float shift: `relative` x the channel's std, floored at the whole tensor's std.

    The floor keeps sparse or dead channels (mostly-zero ReLU outputs) from getting a step so small that
    float32 rounding in the head swamps the difference; a tiny absolute floor keeps an all-zero tensor's
    steps non-zero."""
    wide = features.astype(np.float64)
    per_channel = wide.reshape(wide.shape[0], -1).std(axis=1)
    return relative * np.maximum(per_channel, max(float(wide.std()), 1e-12))


def float_split(
    features: np.ndarray,
    run_head: Callable[[np.ndarray], np.ndarray],
    steps: int,
    tensor: str,
    float_step: float = FLOAT_STEP,
    meta: dict[str, object] | None = None,
) -> FeatureSplit:
    """A cut at a float tensor (K, h, w): channel k shifted by `float_step` x its std, scaled by
    steps / `BASE_STEPS` (so "2, 4, 8 steps" halve and double as on a cut at codes); `run_head` runs the
    backend's head on a batch of feature tensors. The finite-difference error is O(step)."""
    relative = float_step * steps / BASE_STEPS
    shifts = float_steps(features, relative).astype(features.dtype)

    def head_shifted(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        batch = np.repeat(features[None], len(rows), axis=0)
        for r, k in enumerate(rows):
            if k >= 0:
                batch[r, k] += shifts[k]
        return run_head(batch)

    kind = f"float {tensor}, shift {relative:g} x channel std (error O(step))"
    return FeatureSplit(
        features=features,
        step=shifts.astype(np.float64),
        head_shifted=head_shifted,
        meta={"kind": kind, "tensor": tensor, **(meta or {})},
    )


def check_head(split: FeatureSplit, full: np.ndarray, tensor: str, source: str, limit: float) -> None:
    """The unshifted head must give the full model's logits within `limit` (max |diff|), or the split
    raises: its maps would explain other arithmetic. Records the difference as `max_abs_vs_model`."""
    head = split.head_shifted(np.array([-1]))
    if head.shape != full.shape:
        raise SplitUnavailable(f"the head cut at '{tensor}' returns shape {head.shape}, the model {full.shape}")
    diff = float(np.max(np.abs(head.astype(np.float64) - full))) if full.size else 0.0
    if diff > limit:
        raise SplitUnavailable(
            f"the head of {source} cut at '{tensor}' does not reproduce the model's "
            f"logits (max |diff| {diff:.3g} > {limit:.3g}); its maps would explain other arithmetic"
        )
    split.meta["max_abs_vs_model"] = diff


def check_rows_independent(split: FeatureSplit, layer: str, rows: int = 3) -> float:
    """The head run on `rows` copies of the unshifted features must give the same logits on every row;
    returns the largest difference between rows. Raises `SplitUnavailable` when they differ."""
    logits = np.asarray(split.head_shifted(np.full(rows, -1, dtype=np.int64)), dtype=np.float64)
    spread = float(np.max(np.abs(logits - logits[:1]))) if logits.size else 0.0
    limit = ROW_CHECK_RTOL * max(1.0, float(np.max(np.abs(logits[:1])))) if logits.size else 0.0
    if spread > limit:
        raise SplitUnavailable(
            f"the head cut at '{layer}' gives different logits for identical rows of one batch (max |diff| "
            f"{spread:.3g}): a side input encodes the batch position, so shifted rows would not be compared "
            f"like with like"
        )
    return spread


def split_gradcam(
    images: np.ndarray,
    layers: Sequence[str],
    classes: Sequence[int],
    splitter_for: Callable[[str], SplitImage],
    prefix: str = "",
    chunk: int = 32,
    steps: Sequence[int] = (4,),
    cut: str = "",
) -> list[GradcamMaps]:
    """Maps {layer: (N, len(classes), H, W)} by finite differences of each image's split head, one
    `GradcamMaps` per entry of `steps` (in that order; the first is the primary).

    `splitter_for(layer)` prepares the cut once per layer (sessions, graphs) and returns the function
    that splits one (1, C, H, W) image at a step size; it raises `SplitUnavailable` when the layer
    cannot be cut. `seconds_per_image` of each covers its own head passes plus an equal share of the
    cuts' preparation."""
    images = np.asarray(images, dtype=np.float32)
    steps = tuple(dict.fromkeys(int(s) for s in steps))
    out_size = (images.shape[2], images.shape[3])
    maps: dict[int, dict[str, np.ndarray]] = {s: {} for s in steps}
    seconds = dict.fromkeys(steps, 0.0)
    notes: list[str] = [prefix] if prefix else []
    shared = 0.0
    for layer in layers:
        try:
            start = time.perf_counter()
            split_image = splitter_for(layer)
            shared += time.perf_counter() - start
            stats = SplitStats()
            per_step: dict[int, list[np.ndarray]] = {s: [] for s in steps}
            for i in range(len(images)):
                for step in steps:
                    start = time.perf_counter()
                    split = split_image(images[i : i + 1], step)
                    if i == 0 and step == steps[0]:
                        check_rows_independent(split, layer)
                    if step == steps[0]:
                        stats.kind = str(split.meta.get("kind", ""))
                        if "clipped" in split.meta:
                            stats.clipped.append(float(split.meta["clipped"]))  # type: ignore[arg-type]
                    per_step[step].append(finite_difference_cams(split, classes, out_size, chunk=chunk))
                    seconds[step] += time.perf_counter() - start
        except SplitUnavailable as exc:
            notes.append(f"{layer}: not split ({exc})")
            continue
        for step in steps:
            maps[step][layer] = np.stack(per_step[step]).astype(np.float32)
        detail = f"{layer}: {stats.kind}" if stats.kind else layer
        if stats.clipped:
            detail += f", {100 * max(stats.clipped):.1f}% of shifted codes clipped at most"
        notes.append(detail)
    if not maps[steps[0]]:
        notes.insert(0, "no layer could be split")
    count = max(len(images), 1)
    return [
        GradcamMaps(
            maps=maps[step],
            method=METHOD,
            seconds_per_image=(seconds[step] + shared / len(steps)) / count,
            notes="; ".join(notes),
            step=step,
            cut=cut,
        )
        for step in steps
    ]
