"""The 95% interval of a quality drift: a paired bootstrap over evaluation images.

A metric such as mIoU is computed from counts summed over every image (bench.measure.metrics), so its
interval comes from resampling the images (the same images for the quantized model and the fp32
reference), summing their counts, computing the metric for both and taking the difference; the 2.5th and
97.5th percentiles of 2000 such differences. Resampling images and not pixels keeps what varies between
images (their content) as the unit of noise; recomputing the metric from summed counts keeps it the
metric the row reports, not an average of per-image scores. The speedup's interval is
bench.results.intervals'.
"""

from __future__ import annotations

import numpy as np

from bench.measure.boundary import nanmean_rows
from bench.measure.metrics import ImageCounts, dataset_metrics
from bench.results.intervals import CONFIDENCE, Interval

RESAMPLES = 2000
SEED = 0  # fixed: the same predictions give the same interval every time
DRIFT_METRICS = ("miou", "dice", "global_accuracy", "mean_accuracy", "weighted_iou", "mean_bf_score")
MIN_IMAGES = 2  # one image has nothing to resample


def drift_intervals(
    current: ImageCounts,
    reference: ImageCounts,
    foreground: list[int],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict[str, Interval]:
    """`<metric>_drift` -> its paired-bootstrap interval (current minus reference, same images), for the
    dataset scalars and `min_class_iou_drift`; empty with fewer than `MIN_IMAGES` images. A metric whose
    resamples are mostly NaN (a class seen in too few images) gets no interval."""
    n = len(current)
    if n < MIN_IMAGES or len(reference) != n:
        return {}
    weights = np.random.default_rng(SEED).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    now = _resampled(current, weights, foreground)
    ref = _resampled(reference, weights, foreground)
    method = f"paired bootstrap over {n} images, {resamples} resamples"
    found = {}
    tail = (1 - confidence) / 2 * 100
    for name in (*DRIFT_METRICS, "min_class_iou"):
        if name == "min_class_iou":
            with np.errstate(invalid="ignore"):
                per_class = now["iou"] - ref["iou"]
            finite = np.isfinite(per_class)
            difference = np.where(finite.any(axis=1), np.where(finite, per_class, np.inf).min(axis=1), np.nan)
        elif name in now and name in ref:
            difference = now[name] - ref[name]
        else:
            continue
        difference = difference[np.isfinite(difference)]
        if len(difference) < resamples * 0.9:
            continue
        low, high = np.percentile(difference, [tail, 100 - tail])
        found[f"{name}_drift"] = Interval(float(low), float(high), method)
    return found


def _resampled(counts: ImageCounts, weights: np.ndarray, foreground: list[int]) -> dict[str, np.ndarray]:
    """Each metric for every resample (row of `weights`: how many times each image is drawn)."""
    metrics = dataset_metrics(weights @ counts.tp, weights @ counts.fp, weights @ counts.fn, foreground)
    if counts.bf is not None and len(counts.bf):
        per_image = nanmean_rows(np.asarray(counts.bf, np.float64))  # MeanBFScore: mean of image means
        seen = np.isfinite(per_image)
        with np.errstate(invalid="ignore", divide="ignore"):
            metrics["mean_bf_score"] = (weights[:, seen] @ per_image[seen]) / weights[:, seen].sum(axis=1)
    return metrics
