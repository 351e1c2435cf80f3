"""Boundary F1 (BF) score per image and class, as MATLAB's ``bfscore`` / ``evaluateSemanticSegmentation``.

Region metrics (IoU, Dice) barely move when quantization nudges an object's outline by a pixel or two;
the BF score is what sees it. Definitions followed (MATLAB Image Processing Toolbox,
``images.internal.segmentation.bwbfscore2`` and ``semanticSegmentationMetrics``):

- boundary of a class mask = mask minus its erosion by the 4-connected cross ``[0 1 0; 1 1 1; 0 1 0]``,
  after zero padding ("so that objects that touch the image border are eroded away from the border");
- a boundary point matches when the squared distance to a point of the other boundary is ``< theta^2``
  (strict), with ``theta`` by default "0.75% of the image diagonal";
- precision = matched predicted boundary points / predicted boundary points, recall the other way,
  ``BF = 2 * PRECISION * RECALL / (RECALL + PRECISION)``.

Choices where MATLAB leaves the edge case to a MEX file: a class absent from both truth and prediction
(no boundary on either side) is NaN and left out of every mean; a class with a boundary on one side only
scores 0 (all of its boundary is unmatched). A non-empty mask always has a boundary, so "present" means
"has at least one pixel in the truth or the prediction". Void pixels (the suite's ignore label) belong
to neither mask, as MATLAB's ``maskUnlabeledPixels`` does: a mask pixel next to void is a boundary
pixel on both sides, and no boundary pixel ever lies on void.

Aggregation (``semanticSegmentationMetrics`` docs): ``ImageMetrics.MeanBFScore`` "Mean of the BF score
for each class" (NaN classes omitted); ``ClassMetrics.MeanBFScore`` "Mean over all the images of the BF
score for each class"; ``DataSetMetrics.MeanBFScore`` "Mean over all the images of the mean BF score for
each image. This is the mean of ImageMetrics.BFScore" -- i.e. per image first, then over images (not per
class first). All classes count, background included, as in MATLAB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.errors import UsageError

DIAGONAL_FRACTION = 0.0075  # MATLAB: "0.75% of the image diagonal"
_BITS = 64  # classes handled per pass, one bit each in a uint64


def bf_tolerance(height: int, width: int) -> float:
    """MATLAB's default BF distance tolerance theta for an image of this size, in pixels."""
    return DIAGONAL_FRACTION * math.hypot(height, width)


@dataclass(frozen=True)
class BoundaryF1:
    """Per image and class (N, C) arrays; NaN where the class has no pixel in truth nor prediction."""

    score: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    tolerance: float

    def per_image(self) -> np.ndarray:
        """(N,) mean BF over the classes present in each image (MATLAB ImageMetrics.MeanBFScore)."""
        return nanmean_rows(self.score)

    def per_class(self) -> np.ndarray:
        """(C,) mean BF of each class over the images where it is present (ClassMetrics.MeanBFScore)."""
        return nanmean_rows(self.score.T)

    def mean(self) -> float:
        """Dataset MeanBFScore: mean over images of the per-image mean (images with no class left out)."""
        return mean_bf_score(self.score)


def mean_bf_score(scores: np.ndarray) -> float:
    """Dataset MeanBFScore from stacked (N, C) per-image, per-class BF scores (see module docstring)."""
    per_image = nanmean_rows(np.asarray(scores, dtype=np.float64).reshape(-1, np.shape(scores)[-1]))
    return float(np.nanmean(per_image)) if np.isfinite(per_image).any() else float("nan")


def class_boundaries(labels: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: pixels of a class (label >= 0) with a 4-neighbour of another label or off the image.

    Since classes partition the pixels, this equals, for every class c at once, ``mask_c & ~erode(mask_c)``
    with MATLAB's cross structuring element and zero padding; negative labels (void) are in no mask.
    """
    padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    centre = padded[:, 1:-1, 1:-1]
    differs = (
        (padded[:, :-2, 1:-1] != centre)
        | (padded[:, 2:, 1:-1] != centre)
        | (padded[:, 1:-1, :-2] != centre)
        | (padded[:, 1:-1, 2:] != centre)
    )
    return differs & (labels >= 0)


def boundary_f1(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    ignore_label: int | None = None,
    tolerance: float | None = None,
) -> BoundaryF1:
    """BF score of every image (N, H, W; or one H, W image) and class; tolerance defaults to MATLAB's."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise UsageError(f"boundary_f1: prediction shape {pred.shape} differs from truth shape {target.shape}")
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    if pred.ndim != 3:
        raise UsageError(f"boundary_f1: expected (N, H, W) or (H, W) label maps, got shape {pred.shape}")
    n, h, w = pred.shape
    theta = bf_tolerance(h, w) if tolerance is None else float(tolerance)
    if not theta > 0:
        raise UsageError(
            f"boundary_f1: tolerance must be > 0 pixels (MATLAB requires a positive threshold), got {tolerance}"
        )

    valid = (target >= 0) & (target < num_classes)
    if ignore_label is not None:
        valid &= target != ignore_label
    dtype = np.int16 if num_classes < 2**15 else np.int32
    true_labels = np.where(valid, target, -1).astype(dtype)
    pred_labels = np.where(valid & (pred >= 0) & (pred < num_classes), pred, -1).astype(dtype)
    true_edges = np.where(class_boundaries(true_labels), true_labels, -1)
    pred_edges = np.where(class_boundaries(pred_labels), pred_labels, -1)
    matched_pred, total_pred, matched_true, total_true = _match_counts(pred_edges, true_edges, theta, num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = matched_pred / total_pred
        recall = matched_true / total_true
        score = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    one_side = (total_pred == 0) ^ (total_true == 0)
    precision[one_side & (total_pred == 0)] = 0.0  # nothing predicted where truth has the class
    recall[one_side & (total_true == 0)] = 0.0  # predicted a class the truth does not have
    absent = (total_pred == 0) & (total_true == 0)
    score[absent] = precision[absent] = recall[absent] = np.nan
    shape = (n, num_classes)
    return BoundaryF1(score.reshape(shape), precision.reshape(shape), recall.reshape(shape), theta)


def _row_half_widths(theta: float, height: int, width: int) -> dict[int, int]:
    """The disk {(dy, dx): dy^2 + dx^2 < theta^2} as rows: dy -> largest |dx| in that row, clipped to the
    image (a shift of a whole image or more adds nothing)."""
    r = min(math.ceil(theta), max(height, width))
    dx = np.arange(r + 1, dtype=np.float64)
    widths = {}
    for dy in range(-min(r, height - 1), min(r, height - 1) + 1):
        inside = dx[dy * dy + dx * dx < theta * theta]
        if inside.size:
            widths[dy] = min(int(inside.max()), width - 1)
    return widths


def _dilate_bits(bits: np.ndarray, widths: dict[int, int]) -> np.ndarray:
    """OR of `bits` (N, H, W) over the disk, zero outside the image: every class dilated at once, since each
    class owns one bit. Done as a horizontal dilation grown one column at a time, then one vertical shift
    per disk row: about 4 * theta array passes instead of pi * theta^2."""
    out = np.zeros_like(bits)
    row = bits.copy()
    half = 0
    for target in sorted(set(widths.values())):
        while half < target:
            half += 1
            row[:, :, half:] |= bits[:, :, :-half]
            row[:, :, :-half] |= bits[:, :, half:]
        for dy in (d for d, w in widths.items() if w == target):
            if dy > 0:
                out[:, dy:, :] |= row[:, :-dy, :]
            elif dy < 0:
                out[:, :dy, :] |= row[:, -dy:, :]
            else:
                out |= row
    return out


def _match_counts(
    pred_edges: np.ndarray, true_edges: np.ndarray, theta: float, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (image, class), flattened to image * C + class: matched and total predicted boundary points,
    matched and total true boundary points. Inputs hold the class on boundary pixels, -1 elsewhere.
    Classes go 64 at a time into the bits of one integer array, so one dilation serves them all."""
    n, h, w = pred_edges.shape
    widths = _row_half_widths(theta, h, w)
    sides = []
    for edges in (pred_edges, true_edges):
        index = np.flatnonzero(edges >= 0)
        labels = edges.ravel()[index].astype(np.int64)
        sides.append((index, labels, index // (h * w) * num_classes + labels, np.zeros(len(index), bool)))
    for first in range(0, num_classes, _BITS):
        last = min(first + _BITS, num_classes)
        dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(t).bits >= last - first)
        lut = np.zeros(num_classes + 1, dtype)
        lut[first + 1 : last + 1] = np.left_shift(dtype(1), np.arange(last - first, dtype=dtype))
        near_true = _dilate_bits(lut[true_edges + 1], widths)  # +1: label -1 (no boundary) maps to 0
        near_pred = _dilate_bits(lut[pred_edges + 1], widths)
        for (index, labels, _, hit), near in zip(sides, (near_true, near_pred)):
            hit |= (near.ravel()[index] & lut[labels + 1]) != 0
    size = n * num_classes
    (_, _, pred_group, pred_hit), (_, _, true_group, true_hit) = sides
    return (
        np.bincount(pred_group[pred_hit], minlength=size).astype(np.float64),
        np.bincount(pred_group, minlength=size).astype(np.float64),
        np.bincount(true_group[true_hit], minlength=size).astype(np.float64),
        np.bincount(true_group, minlength=size).astype(np.float64),
    )


def nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN, NaN (without a warning) for an all-NaN row."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.isfinite(values).sum(axis=-1)
    sums = np.nansum(values, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
