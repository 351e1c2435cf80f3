import numpy as np
import pytest
from scipy import ndimage

from bench.errors import UsageError
from bench.measure.metrics import (
    SegmentationAccumulator,
    SegmentationScores,
    confusion_matrix,
    evaluate_batches,
    labels_from_logits,
    score_predictions,
)

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


# --- MATLAB evaluateSemanticSegmentation metrics -------------------------------------------------------

VOID = 255
# 3 classes and one void pixel (bottom right)
TRUTH3 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 2, VOID]])
PRED3 = np.array(
    [[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 1, 2], [2, 2, 2, 0]]
)  # the last pixel is void in the truth and must not count


def test_matlab_dataset_metrics_by_hand():
    scores = score_predictions(PRED3[None], TRUTH3[None], 3, foreground=[1, 2], ignore_label=VOID)
    # confusion (rows truth, columns prediction), 15 non-void pixels:
    #   truth 0 (4 px): 3 -> 0, 1 -> 1           [3, 1, 0]
    #   truth 1 (6 px): 5 -> 1, 1 -> 2           [0, 5, 1]
    #   truth 2 (5 px): 4 -> 2, 1 -> 0           [1, 0, 4]
    assert confusion_matrix(PRED3, TRUTH3, 3, VOID).tolist() == [[3, 1, 0], [0, 5, 1], [1, 0, 4]]
    # GlobalAccuracy = (3 + 5 + 4) / 15
    assert scores.global_accuracy == pytest.approx(12 / 15)
    # class accuracy TP / (TP + FN) = 3/4, 5/6, 4/5; MeanAccuracy = their mean
    assert scores.accuracy_per_class == pytest.approx((3 / 4, 5 / 6, 4 / 5))
    assert scores.mean_accuracy == pytest.approx((3 / 4 + 5 / 6 + 4 / 5) / 3)  # 0.79444
    # IoU TP / (TP + FP + FN): 3/(3+1+1), 5/(5+1+1), 4/(4+1+1)
    assert scores.iou == pytest.approx((3 / 5, 5 / 7, 4 / 6))
    assert scores.miou == pytest.approx((3 / 5 + 5 / 7 + 4 / 6) / 3)  # 0.66032
    # WeightedIoU: IoU weighted by truth pixels 4, 6, 5 out of 15
    assert scores.weighted_iou == pytest.approx((4 * 3 / 5 + 6 * 5 / 7 + 5 * 4 / 6) / 15)  # 0.66794
    # Dice 2TP / (2TP + FP + FN): 6/8, 10/12, 8/10; headline dice = mean over foreground 1, 2
    assert scores.dice_per_class == pytest.approx((6 / 8, 10 / 12, 8 / 10))
    assert scores.dice == pytest.approx((10 / 12 + 8 / 10) / 2)
    assert scores.bf_per_class == () and np.isnan(scores.mean_bf_score)  # boundaries not asked for


def test_absent_and_only_predicted_classes_follow_the_nan_rules():
    # 5 classes: class 3 is predicted but never true, class 4 appears nowhere
    pred = PRED3.copy()
    pred[0, 0] = 3  # a truth-0 pixel predicted as 3
    scores = score_predictions(pred[None], TRUTH3[None], 5, foreground=[1, 2], ignore_label=VOID)
    assert np.isnan(scores.accuracy_per_class[3]) and np.isnan(scores.accuracy_per_class[4])  # no truth pixels
    assert scores.iou[3] == 0.0 and np.isnan(scores.iou[4])  # predicted only -> 0; absent -> NaN
    # MeanAccuracy over classes 0..2 only: 2/4, 5/6, 4/5; MeanIoU over 0..3: 2/5, 5/7, 4/6, 0
    assert scores.mean_accuracy == pytest.approx((2 / 4 + 5 / 6 + 4 / 5) / 3)
    assert scores.miou == pytest.approx((2 / 5 + 5 / 7 + 4 / 6 + 0) / 4)
    # WeightedIoU: class 3 has weight 0, class 4 is NaN and left out: (4*2/5 + 6*5/7 + 5*4/6) / 15
    assert scores.weighted_iou == pytest.approx((4 * 2 / 5 + 6 * 5 / 7 + 5 * 4 / 6) / 15)


def test_dataset_metrics_are_not_means_of_batch_means():
    # batch 1: a small object found exactly; batch 2: a large object half found (2x2 images)
    t1, p1 = np.array([[[1, 0], [0, 0]]]), np.array([[[1, 0], [0, 0]]])
    t2, p2 = np.array([[[1, 1], [1, 1]]]), np.array([[[1, 1], [0, 0]]])
    batch = [score_predictions(p, t, 2, [1]) for p, t in ((p1, t1), (p2, t2))]
    pooled = evaluate_batches([(p1, t1), (p2, t2)], 2, [1], boundary=False)
    # pooled confusion: truth 0 -> [3, 0], truth 1 -> [2, 3]
    # MeanIoU: IoU0 = 3/(3+2) and IoU1 = 3/(3+2) -> 0.6; the batches give 1.0 and (0 + 1/2)/2 -> mean 0.625
    assert pooled.miou == pytest.approx(0.6)
    assert np.mean([s.miou for s in batch]) == pytest.approx(0.625)
    # MeanAccuracy: 3/3 and 3/5 -> 0.8; the batches give 1.0 and 0.5 (class 0 has no truth) -> mean 0.75
    assert pooled.mean_accuracy == pytest.approx(0.8)
    assert np.mean([s.mean_accuracy for s in batch]) == pytest.approx(0.75)


def _scene(rng: np.random.Generator, n: int = 6, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    truth = ndimage.zoom(rng.integers(0, classes, (n, 6, 6)), (1, 5, 5), order=0)
    pred = np.where(rng.random(truth.shape) < 0.1, rng.integers(0, classes, truth.shape), truth)
    truth[:, :3, :3] = VOID
    return pred, truth


def test_accumulator_equals_one_shot_with_boundaries():
    pred, truth = _scene(np.random.default_rng(3))
    whole = score_predictions(pred, truth, 3, [1, 2], VOID, boundary=True)
    acc = SegmentationAccumulator(3, [1, 2], VOID)
    for i in range(0, len(pred), 4):  # batches of 4 and 2
        acc.add(pred[i : i + 4], truth[i : i + 4])
    assert acc.scores() == whole
    assert acc.bf_scores().shape == (6, 3)
    assert 0 < whole.mean_bf_score < 1 and len(whole.bf_per_class) == 3
    # MeanBFScore is the mean over images of each image's class mean
    bf = acc.bf_scores()
    assert whole.mean_bf_score == pytest.approx(np.mean(np.nanmean(bf, axis=1)))
    assert whole.bf_per_class == pytest.approx(tuple(np.nanmean(bf, axis=0)))


def test_labels_from_logits():
    logits = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 1000.0, -1000.0]).reshape(1, 1, 1, 7)
    # sigmoid: 0.269, 0.5, 0.622, 0.731, 0.881, 1, 0; "> 0.5" means logit > log(0.5/0.5) = 0
    assert labels_from_logits(logits).tolist() == [[[0, 0, 1, 1, 1, 1, 0]]]
    # 0.8 -> logit > log(0.8/0.2) = log 4 = 1.386
    assert labels_from_logits(logits, threshold=0.8).tolist() == [[[0, 0, 0, 0, 1, 1, 0]]]
    multi = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, -1.0]]).reshape(1, 3, 1, 2)  # (N, C, H, W)
    assert labels_from_logits(multi).tolist() == [[[2, 1]]]
    with pytest.raises(UsageError, match="threshold"):
        labels_from_logits(logits, threshold=1.0)
    with pytest.raises(UsageError, match="N, C, H, W"):
        labels_from_logits(np.zeros((2, 3)))
