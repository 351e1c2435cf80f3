"""Segmentation quality from a dataset-level confusion matrix, and drift between two predictions.

IoU and Dice are computed once from a confusion matrix accumulated over every evaluation pixel, never
as a mean of per-image or per-batch means. Void pixels (the suite's ignore label) are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int | None = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows are ground truth, columns are predictions."""
    pred = np.asarray(pred).ravel()
    target = np.asarray(target).ravel()
    valid = (target >= 0) & (target < num_classes)
    if ignore_label is not None:
        valid &= target != ignore_label
    index = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class IoU and Dice (NaN for a class absent from both truth and prediction) and means."""

    iou: tuple[float, ...]
    dice_per_class: tuple[float, ...]
    miou: float
    dice: float  # mean Dice over the foreground classes
    global_accuracy: float

    @classmethod
    def from_confusion(cls, cm: np.ndarray, foreground: list[int]) -> "SegmentationScores":
        tp = np.diag(cm).astype(np.float64)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (tp + fp + fn)
            dice = 2 * tp / (2 * tp + fp + fn)
        total = cm.sum()
        return cls(
            iou=tuple(float(v) for v in iou),
            dice_per_class=tuple(float(v) for v in dice),
            miou=_nanmean(iou),
            dice=_nanmean(dice[foreground]),
            global_accuracy=float(tp.sum() / total) if total else float("nan"),
        )


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def pixel_agreement(pred: np.ndarray, reference: np.ndarray, target: np.ndarray, ignore_label: int | None) -> float:
    """Fraction of non-void pixels where two predictions give the same class."""
    valid = np.ones(target.shape, bool) if ignore_label is None else target != ignore_label
    return float((pred[valid] == reference[valid]).mean())


def per_image_dice(pred: np.ndarray, target: np.ndarray, num_classes: int, foreground: list[int],
                   ignore_label: int | None = None) -> np.ndarray:
    """Mean foreground Dice of each image (N,), NaN where an image has no foreground in truth or prediction."""
    return np.array([SegmentationScores.from_confusion(confusion_matrix(p, t, num_classes, ignore_label), foreground).dice
                     for p, t in zip(pred, target)])


def score_predictions(pred: np.ndarray, target: np.ndarray, num_classes: int, foreground: list[int], ignore_label: int | None = None) -> SegmentationScores:
    return SegmentationScores.from_confusion(confusion_matrix(pred, target, num_classes, ignore_label), foreground)
