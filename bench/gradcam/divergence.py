"""How far a backend's Grad-CAM maps drift from the fp32 reference's, per image and class.

Four views of the same pair of maps, because they fail differently: Pearson sees linear agreement of
the values, Spearman only their ranking, the top-10% IoU whether the hottest pixels are the same ones,
and the Jensen-Shannon divergence (maps as distributions summing to 1, base 2, so in [0, 1]) how the
attribution mass moved. An all-zero map (ReLU of a negative sum everywhere) has no shape to compare:
that pair gets NaN in every metric and is counted in `gradcam_zero_maps`, so the row shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from bench.errors import UsageError

TOP_FRACTION_PERCENTILE = 90.0


@dataclass(frozen=True)
class MapDivergence:
    """One (image, class) pair of maps: the four metrics and which side, if any, was all zero."""

    image: int
    class_index: int
    pearson: float
    spearman: float
    top10_iou: float
    jsd: float
    reference_zero: bool
    backend_zero: bool

    @property
    def zero(self) -> bool:
        return self.reference_zero or self.backend_zero


@dataclass(frozen=True)
class GradcamSummary:
    """Nan-means over the (image, class) pairs, for a result row; `gradcam_zero_maps` counts the pairs
    left out of the means because one of their maps (either side) was all zero."""

    gradcam_pearson: float
    gradcam_spearman: float
    gradcam_top10_iou: float
    gradcam_jsd: float
    gradcam_zero_maps: int

    def as_row(self) -> dict[str, float | int]:
        return asdict(self)


def _constant(values: np.ndarray) -> bool:
    return bool(values.size == 0 or np.all(values == values.flat[0]))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps' pixels; NaN when either is constant."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if _constant(a) or _constant(b):
        return float("nan")
    return float(np.clip(np.corrcoef(a, b)[0, 1], -1.0, 1.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties get average ranks); NaN when either map is constant."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if _constant(a) or _constant(b):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def top_region(cam: np.ndarray, percentile: float = TOP_FRACTION_PERCENTILE) -> np.ndarray:
    """Pixels strictly above the map's own percentile. When ties at the top leave that empty (a plateau
    covering more than the top 10%), the plateau itself (pixels >= the percentile) is the region."""
    values = np.asarray(cam, dtype=np.float64)
    threshold = np.percentile(values, percentile)
    region = values > threshold
    return region if region.any() else values >= threshold


def top_iou(a: np.ndarray, b: np.ndarray, percentile: float = TOP_FRACTION_PERCENTILE) -> float:
    """Intersection over union of the two maps' top regions, each thresholded at its own percentile."""
    ra, rb = top_region(a, percentile), top_region(b, percentile)
    union = np.logical_or(ra, rb).sum()
    return float(np.logical_and(ra, rb).sum() / union) if union else float("nan")


def jsd(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of the maps normalized to sum 1. scipy returns the
    distance, the square root of the divergence: squared here."""
    p, q = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(max(jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2, 0.0))


def _all_zero(cam: np.ndarray) -> bool:
    return not np.any(cam)


def map_divergence(reference: np.ndarray, other: np.ndarray, image: int = 0, class_index: int = 0) -> MapDivergence:
    """The four metrics for one pair of (H, W) maps; NaN everywhere when either map is all zero."""
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape or reference.ndim != 2:
        raise UsageError(
            f"Grad-CAM maps to compare must be two (H, W) arrays of one shape, got {reference.shape} and {other.shape}"
        )
    ref_zero, other_zero = _all_zero(reference), _all_zero(other)
    if ref_zero or other_zero:
        nan = float("nan")
        return MapDivergence(image, class_index, nan, nan, nan, nan, ref_zero, other_zero)
    return MapDivergence(
        image,
        class_index,
        pearson(reference, other),
        spearman(reference, other),
        top_iou(reference, other),
        jsd(reference, other),
        False,
        False,
    )


def divergence_records(
    reference: np.ndarray, other: np.ndarray, classes: tuple[int, ...] | None = None
) -> list[MapDivergence]:
    """Per (image, class) records for (N, C, H, W) maps; `classes` labels the C axis (default 0..C-1)."""
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape or reference.ndim != 4:
        raise UsageError(
            f"Grad-CAM map stacks to compare must be (N, C, H, W) of one shape, got {reference.shape} and {other.shape}"
        )
    labels = tuple(range(reference.shape[1])) if classes is None else tuple(classes)
    if len(labels) != reference.shape[1]:
        raise UsageError(f"{len(labels)} class labels for {reference.shape[1]} map channels")
    return [
        map_divergence(reference[n, j], other[n, j], n, labels[j])
        for n in range(reference.shape[0])
        for j in range(reference.shape[1])
    ]


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(records: list[MapDivergence]) -> GradcamSummary:
    """Nan-means of each metric over the records, and how many pairs had an all-zero map."""
    return GradcamSummary(
        gradcam_pearson=_nanmean([r.pearson for r in records]),
        gradcam_spearman=_nanmean([r.spearman for r in records]),
        gradcam_top10_iou=_nanmean([r.top10_iou for r in records]),
        gradcam_jsd=_nanmean([r.jsd for r in records]),
        gradcam_zero_maps=sum(r.zero for r in records),
    )


def compare_maps(
    reference: np.ndarray, other: np.ndarray, classes: tuple[int, ...] | None = None
) -> tuple[list[MapDivergence], GradcamSummary]:
    """Records and their row summary in one call."""
    records = divergence_records(reference, other, classes)
    return records, summarize(records)
