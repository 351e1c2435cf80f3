import numpy as np
import pytest

from bench.metrics import SegmentationScores, confusion_matrix, pixel_agreement, score_predictions

TARGET = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 0, 1]])


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, TARGET, 2)
    assert cm.tolist() == [[3, 1], [1, 3]]  # rows: truth, columns: prediction


def test_iou_and_dice_by_hand():
    scores = score_predictions(PRED, TARGET, 2, foreground=[1])
    assert scores.iou == pytest.approx((3 / 5, 3 / 5))
    assert scores.dice_per_class == pytest.approx((6 / 8, 6 / 8))
    assert scores.dice == pytest.approx(0.75)
    assert scores.miou == pytest.approx(0.6)
    assert scores.global_accuracy == pytest.approx(6 / 8)


def test_ignore_label_is_excluded():
    target = np.array([0, 1, 2, 2])
    pred = np.array([0, 1, 0, 1])
    cm = confusion_matrix(pred, target, 2, ignore_label=2)
    assert cm.sum() == 2 and np.trace(cm) == 2
    assert pixel_agreement(pred, np.array([0, 1, 1, 1]), target, ignore_label=2) == 1.0


def test_dataset_level_iou_is_not_a_mean_of_image_means():
    # image 1: small object found exactly; image 2: large object half found
    t1, p1 = np.array([1, 0, 0, 0]), np.array([1, 0, 0, 0])
    t2, p2 = np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0])
    cm = confusion_matrix(np.concatenate([p1, p2]), np.concatenate([t1, t2]), 2)
    pooled = SegmentationScores.from_confusion(cm, [1]).iou[1]
    assert pooled == pytest.approx(3 / 5)  # not (1 + 0.5) / 2


def test_absent_class_is_nan_and_left_out_of_means():
    scores = score_predictions(np.zeros(4, int), np.zeros(4, int), 3, foreground=[1, 2])
    assert np.isnan(scores.iou[1]) and scores.miou == 1.0 and np.isnan(scores.dice)
