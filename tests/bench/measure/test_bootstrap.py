"""The paired bootstrap of a quality drift over evaluation images, on hand-made per-image counts: the
metric is recomputed from resampled summed counts, for the quantized model and the reference alike."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.bootstrap import MIN_IMAGES, drift_intervals
from bench.measure.metrics import ImageCounts

METHOD = "paired bootstrap over 3 images, 2000 resamples"


def _counts(tp: list[list[int]], fp: list[list[int]], fn: list[list[int]], bf: object = None) -> ImageCounts:
    return ImageCounts(np.array(tp), np.array(fp), np.array(fn), None if bf is None else np.array(bf, float))


def test_the_same_error_in_every_image_gives_a_point_interval_at_the_drift():
    """Every image: the reference is perfect; the model calls one of 2 object pixels background and one of
    8 background pixels object. Every resample then has the same metrics: iou (8/9, 1/2)."""
    reference = _counts([[8, 2]] * 3, [[0, 0]] * 3, [[0, 0]] * 3)
    current = _counts([[8, 1]] * 3, [[1, 0]] * 3, [[0, 1]] * 3)
    found = drift_intervals(current, reference, foreground=[1])
    assert {name: interval.low for name, interval in found.items()} == pytest.approx(
        {
            "miou_drift": (8 / 9 + 1 / 2) / 2 - 1,
            "dice_drift": 2 / 3 - 1,  # the foreground's Dice: 2 * 1 / (2 + 1)
            "global_accuracy_drift": 9 / 10 - 1,
            "mean_accuracy_drift": (1 + 1 / 2) / 2 - 1,
            "weighted_iou_drift": (8 * 8 / 9 + 2 / 2) / 10 - 1,
            "min_class_iou_drift": 1 / 2 - 1,  # the worst class's own drift
        }
    )
    assert all(interval.width() == 0 for interval in found.values())
    assert {interval.method for interval in found.values()} == {METHOD}


def test_images_that_differ_give_an_interval_around_the_whole_sets_drift():
    reference = _counts([[8, 2], [6, 4], [9, 1]], [[0, 0]] * 3, [[0, 0]] * 3)
    current = _counts([[8, 2], [6, 1], [9, 1]], [[0, 0], [3, 0], [0, 0]], [[0, 0], [0, 3], [0, 0]])
    interval = drift_intervals(current, reference, [1])["miou_drift"]
    point = (23 / 26 + 4 / 7) / 2 - 1  # summed: tp (23, 4), fp (3, 0), fn (0, 3); the reference is perfect
    assert interval.low < point <= interval.high <= 0.0  # one image of three carries every error
    assert interval.high == pytest.approx(0.0)  # resamples without that image: no drift at all


def test_too_few_images_or_unpaired_counts_give_no_interval():
    one = _counts([[8, 2]], [[0, 0]], [[0, 0]])
    assert MIN_IMAGES == 2 and drift_intervals(one, one, [1]) == {}
    two = _counts([[8, 2]] * 2, [[0, 0]] * 2, [[0, 0]] * 2)
    three = _counts([[8, 2]] * 3, [[0, 0]] * 3, [[0, 0]] * 3)
    assert drift_intervals(two, three, [1]) == {}


def test_a_metric_undefined_in_many_resamples_gets_no_interval():
    """The object is in one image of two: a quarter of the resamples hold no object, so Dice (foreground
    only) is undefined there; mIoU, over both classes, is defined in all of them."""
    counts = _counts([[8, 2], [10, 0]], [[0, 0]] * 2, [[0, 0]] * 2)
    found = drift_intervals(counts, counts, [1])
    assert "dice_drift" not in found and "miou_drift" in found


def test_boundary_scores_are_resampled_as_the_mean_of_image_means():
    tp, zeros = [[8, 2]] * 3, [[0, 0]] * 3
    bf = [[1.0, 0.5], [1.0, np.nan], [0.8, 0.6]]
    same = drift_intervals(_counts(tp, zeros, zeros, bf), _counts(tp, zeros, zeros, bf), [1])
    assert (same["mean_bf_score_drift"].low, same["mean_bf_score_drift"].high) == (0.0, 0.0)
    assert "mean_bf_score_drift" not in drift_intervals(_counts(tp, zeros, zeros), _counts(tp, zeros, zeros), [1])
