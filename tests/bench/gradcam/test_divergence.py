"""Divergence between a backend's Grad-CAM maps and the fp32 reference's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.errors import UsageError
from bench.gradcam.divergence import (
    GradcamSummary,
    compare_maps,
    divergence_records,
    jsd,
    map_divergence,
    pearson,
    spearman,
    summarize,
    top_iou,
    top_region,
)


def _maps(seed: int, shape: tuple[int, ...] = (3, 2, 16, 20)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=shape), 0).astype(np.float32)  # ReLU'd, like real maps


def test_maps_against_themselves() -> None:
    maps = _maps(0)
    records, summary = compare_maps(maps, maps.copy())
    assert len(records) == 6 and {(r.image, r.class_index) for r in records} == {
        (i, c) for i in range(3) for c in (0, 1)
    }
    for record in records:
        assert record.pearson == pytest.approx(1.0) and record.spearman == pytest.approx(1.0)
        assert record.top10_iou == 1.0 and record.jsd == pytest.approx(0.0, abs=1e-12)
    assert summary == GradcamSummary(pytest.approx(1.0), pytest.approx(1.0), 1.0, pytest.approx(0.0, abs=1e-12), 0)


def test_row_fields_are_the_result_columns() -> None:
    row = summarize(divergence_records(_maps(1), _maps(2))).as_row()
    assert list(row) == ["gradcam_pearson", "gradcam_spearman", "gradcam_top10_iou", "gradcam_jsd", "gradcam_zero_maps"]


def test_independent_maps_diverge() -> None:
    summary = compare_maps(_maps(3), _maps(4))[1]
    assert abs(summary.gradcam_pearson) < 0.1 and abs(summary.gradcam_spearman) < 0.1
    assert summary.gradcam_top10_iou < 0.2 and summary.gradcam_jsd > 0.2


def test_rank_metrics_ignore_monotone_rescaling() -> None:
    a = np.arange(1, 101, dtype=np.float64).reshape(10, 10)
    b = a**3
    assert spearman(a, b) == pytest.approx(1.0)
    assert top_iou(a, b) == 1.0
    assert pearson(a, b) < 0.95  # not linear
    assert jsd(a, 5 * a) == pytest.approx(0.0, abs=1e-12)  # scale-free: maps are normalized to sum 1


def test_known_values() -> None:
    a = np.zeros((4, 5))
    b = np.zeros((4, 5))
    a[0, :2] = 1.0  # top 10% of 20 pixels = 2 pixels
    b[0, 1:3] = 1.0
    assert top_iou(a, b) == pytest.approx(1 / 3)
    disjoint = np.zeros((4, 5))
    disjoint[3, 3:] = 1.0
    assert jsd(a, disjoint) == pytest.approx(1.0)  # disjoint supports: the base-2 maximum
    # half the mass shared: m = (1/4, 1/2, 1/4), KL(p||m) = KL(q||m) = 1/2 * log2(2) = 1/2, JSD = 1/2
    p = np.array([[1.0, 1.0, 0.0]])
    q = np.array([[0.0, 1.0, 1.0]])
    assert jsd(p, q) == pytest.approx(0.5)


def test_top_region_ties() -> None:
    plateau = np.zeros((10, 10))
    plateau[:3] = 2.0  # 30% of the pixels tie at the maximum: the 90th percentile is 2
    region = top_region(plateau)
    assert region.sum() == 30  # the plateau, not an empty set
    mostly_zero = np.zeros((10, 10))
    mostly_zero[0, :5] = np.arange(1, 6)  # 95% zeros: percentile 90 is 0, strict > keeps the 5 hot pixels
    assert top_region(mostly_zero).sum() == 5


def test_all_zero_map_is_nan_and_counted() -> None:
    reference, other = _maps(5), _maps(5)
    other[1, 0] = 0.0
    reference[2, 1] = 0.0
    records, summary = compare_maps(reference, other, classes=(3, 7))
    flagged = [(r.image, r.class_index, r.reference_zero, r.backend_zero) for r in records if r.zero]
    assert flagged == [(1, 3, False, True), (2, 7, True, False)]
    for record in records:
        values = [record.pearson, record.spearman, record.top10_iou, record.jsd]
        assert all(math.isnan(v) for v in values) == record.zero
    assert summary.gradcam_zero_maps == 2
    assert summary.gradcam_pearson == pytest.approx(1.0)  # nan-mean over the four comparable pairs


def test_every_map_zero_gives_nan_summary() -> None:
    zeros = np.zeros((1, 1, 4, 4))
    summary = compare_maps(zeros, _maps(6, (1, 1, 4, 4)))[1]
    assert math.isnan(summary.gradcam_pearson) and math.isnan(summary.gradcam_jsd)
    assert summary.gradcam_zero_maps == 1


def test_constant_nonzero_map_has_no_correlation() -> None:
    record = map_divergence(np.ones((4, 4)), _maps(7, (4, 4)) + 0.1)
    assert math.isnan(record.pearson) and math.isnan(record.spearman) and not record.zero
    assert 0 < record.jsd < 1


def test_shape_mismatch_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="one shape"):
        compare_maps(_maps(0), _maps(0, (3, 2, 16, 21)))
    with pytest.raises(UsageError, match="class labels"):
        divergence_records(_maps(0), _maps(0), classes=(1,))
