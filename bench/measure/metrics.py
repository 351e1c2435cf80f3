"""Segmentation quality from a dataset-level confusion matrix, and boundary F1 (drift: `bench.measure.drift`).

Every region metric is computed once from ONE confusion matrix accumulated over every evaluation pixel of
every image, never as a mean of per-image or per-batch means. Void pixels (the suite's ignore label) are
excluded. Definitions follow MATLAB's ``evaluateSemanticSegmentation`` (``semanticSegmentationMetrics``
DataSetMetrics / ClassMetrics), whose documentation reads:

- GlobalAccuracy "Ratio of correctly classified pixels to total pixels, regardless of class."
  -> ``global_accuracy`` = trace(cm) / sum(cm), over non-void pixels.
- MeanAccuracy "Mean of the share of correctly classified pixels for each class. This is the mean of
  ClassMetrics.Accuracy." -> ``mean_accuracy`` = mean over classes of TP / (TP + FN) (``accuracy_per_class``).
- MeanIoU "Mean of the intersection over union ... for each class." -> ``miou``, mean of ``iou``.
- WeightedIoU "Mean of the intersection over union coefficient (IoU) for each class weighted by the number
  of pixels in each class." -> ``weighted_iou`` = sum_c gt_c * IoU_c / sum_c gt_c (gt_c: truth pixels).
- MeanBFScore "Mean over all the images of the mean BF score for each image." -> ``mean_bf_score``;
  ClassMetrics.MeanBFScore -> ``bf_per_class`` (see bench.measure.boundary for the BF definition).

NaN rules: a class without truth pixels has NaN accuracy; a class absent from both truth and prediction has
NaN IoU and Dice; NaN classes are left out of the means. (MATLAB's 2017 code used ``nanmean`` for this; its
2023 code switched the dataset means to ``'includenan'``, so a class missing from the whole dataset makes
MATLAB's MeanAccuracy/MeanIoU NaN. We keep the excluding rule: one absent class must not blank a row.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from bench.errors import UsageError
from bench.measure.boundary import boundary_f1, mean_bf_score, nanmean_rows


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int | None = None
) -> np.ndarray:
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
    """Dataset-level quality (MATLAB name in brackets): per-class IoU [ClassMetrics.IoU], Dice, accuracy
    [ClassMetrics.Accuracy], BF [ClassMetrics.MeanBFScore], and the means [DataSetMetrics]."""

    iou: tuple[float, ...]
    dice_per_class: tuple[float, ...]
    miou: float  # [MeanIoU]
    dice: float  # mean Dice over the foreground classes
    global_accuracy: float  # [GlobalAccuracy]
    accuracy_per_class: tuple[float, ...] = ()
    mean_accuracy: float = float("nan")  # [MeanAccuracy]
    weighted_iou: float = float("nan")  # [WeightedIoU]
    bf_per_class: tuple[float, ...] = ()  # empty when boundaries were not scored
    mean_bf_score: float = float("nan")  # [MeanBFScore]

    SCALARS: ClassVar[tuple[str, ...]] = (
        "global_accuracy",
        "mean_accuracy",
        "miou",
        "weighted_iou",
        "mean_bf_score",
        "dice",
    )
    PER_CLASS: ClassVar[dict[str, str]] = {
        "iou": "iou",
        "dice_per_class": "dice",
        "accuracy_per_class": "accuracy",
        "bf_per_class": "bf",
    }

    @classmethod
    def from_confusion(cls, cm: np.ndarray, foreground: list[int], bf: np.ndarray | None = None) -> SegmentationScores:
        """Scores from one dataset confusion matrix; `bf` is the optional (N, C) per-image, per-class BF matrix."""
        cm = np.asarray(cm)
        tp = np.diag(cm).astype(np.float64)
        truth = cm.sum(axis=1).astype(np.float64)
        fp = cm.sum(axis=0) - tp
        fn = truth - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (tp + fp + fn)
            dice = 2 * tp / (2 * tp + fp + fn)
            accuracy = tp / truth
        total = float(cm.sum())
        weighted = float(np.nansum(truth * iou) / total) if total else float("nan")
        bf_class: tuple[float, ...] = ()
        mean_bf = float("nan")
        if bf is not None:
            bf = np.asarray(bf, dtype=np.float64).reshape(-1, cm.shape[0])
            counts = np.isfinite(bf).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                bf_class = tuple(
                    float(v) for v in np.where(counts > 0, np.nansum(bf, axis=0) / np.maximum(counts, 1), np.nan)
                )
            mean_bf = mean_bf_score(bf)
        return cls(
            iou=_floats(iou),
            dice_per_class=_floats(dice),
            miou=_nanmean(iou),
            dice=_nanmean(dice[foreground]),
            global_accuracy=float(tp.sum() / total) if total else float("nan"),
            accuracy_per_class=_floats(accuracy),
            mean_accuracy=_nanmean(accuracy),
            weighted_iou=weighted,
            bf_per_class=bf_class,
            mean_bf_score=mean_bf,
        )

    def scalars(self) -> dict[str, float]:
        """The dataset-level numbers by field name."""
        return {name: getattr(self, name) for name in self.SCALARS}

    def as_dict(self, class_names: list[str] | None = None) -> dict[str, float]:
        """Scalars plus per-class values as ``iou_<class>``, ``dice_<class>``, ``accuracy_<class>``, ``bf_<class>``."""
        out = self.scalars()
        for attribute, prefix in self.PER_CLASS.items():
            values = getattr(self, attribute)
            names = class_names if class_names is not None else [str(i) for i in range(len(values))]
            if values and len(names) != len(values):
                raise UsageError(f"as_dict: {len(names)} class names for {len(values)} classes")
            out |= {f"{prefix}_{name}": v for name, v in zip(names, values)}
        return out


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def per_image_dice(
    pred: np.ndarray, target: np.ndarray, num_classes: int, foreground: list[int], ignore_label: int | None = None
) -> np.ndarray:
    """Mean foreground Dice of each image (N,), NaN where an image has no foreground in truth or prediction."""
    return np.array(
        [
            SegmentationScores.from_confusion(confusion_matrix(p, t, num_classes, ignore_label), foreground).dice
            for p, t in zip(pred, target)
        ]
    )


def score_predictions(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    foreground: list[int],
    ignore_label: int | None = None,
    boundary: bool = False,
) -> SegmentationScores:
    """Dataset scores of (N, H, W) predictions; `boundary` adds the BF scores (a little slower)."""
    cm = confusion_matrix(pred, target, num_classes, ignore_label)
    bf = boundary_f1(pred, target, num_classes, ignore_label).score if boundary else None
    return SegmentationScores.from_confusion(cm, foreground, bf)


@dataclass(frozen=True)
class ImageCounts:
    """Per image and class: true positives, false positives, false negatives (N, C) and the BF score
    (N, C, NaN where a class is on neither side; None when boundaries were not scored). Every
    dataset-level metric is a function of these summed over images (`dataset_metrics`), so a bootstrap
    over images recomputes the metric itself, never an average of per-image scores."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    bf: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tp)


def image_counts(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn) of each class from one (C, C) confusion matrix (rows truth, columns prediction)."""
    tp = np.diag(cm).astype(np.int64)
    return tp, cm.sum(axis=0).astype(np.int64) - tp, cm.sum(axis=1).astype(np.int64) - tp


def dataset_metrics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, foreground: list[int]) -> dict[str, np.ndarray]:
    """The confusion-based scalars of `SegmentationScores.from_confusion` (same NaN rules) for summed
    counts of shape (..., C): one value per leading index (a bootstrap's resamples at once)."""
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
    truth = tp + fn
    total = truth.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
        accuracy = tp / truth
        return {
            "global_accuracy": tp.sum(axis=-1) / total,
            "mean_accuracy": nanmean_rows(accuracy),
            "miou": nanmean_rows(iou),
            "weighted_iou": np.nansum(truth * iou, axis=-1) / total,
            "dice": nanmean_rows(dice[..., foreground]),
            "iou": iou,
        }


@dataclass
class SegmentationAccumulator:
    """Streaming evaluation: add batches as they come; one confusion matrix, and per image its counts
    and BF row (`ImageCounts`, what a bootstrap over images needs)."""

    num_classes: int
    foreground: list[int]
    ignore_label: int | None = None
    boundary: bool = True
    tolerance: float | None = None  # BF distance tolerance in pixels; None: 0.75% of each image's diagonal
    confusion: np.ndarray = field(init=False)
    _bf: list[np.ndarray] = field(init=False, default_factory=list)
    _counts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def add(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise UsageError(
                f"SegmentationAccumulator.add: prediction shape {pred.shape} differs from truth shape {target.shape}"
            )
        for image_pred, image_target in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])):
            cm = confusion_matrix(image_pred, image_target, self.num_classes, self.ignore_label)
            self.confusion += cm
            self._counts.append(image_counts(cm))
        if self.boundary:
            self._bf.append(boundary_f1(pred, target, self.num_classes, self.ignore_label, self.tolerance).score)

    def bf_scores(self) -> np.ndarray:
        """(N, C) BF of every image seen so far and class (NaN: class absent from both sides)."""
        return np.concatenate(self._bf) if self._bf else np.zeros((0, self.num_classes))

    def image_counts(self) -> ImageCounts:
        """Every image's counts seen so far, in the order added."""
        if self._counts:
            tp, fp, fn = (np.stack(parts) for parts in zip(*self._counts))
        else:
            tp = fp = fn = np.zeros((0, self.num_classes), np.int64)
        return ImageCounts(tp, fp, fn, self.bf_scores() if self.boundary else None)

    def scores(self) -> SegmentationScores:
        return SegmentationScores.from_confusion(
            self.confusion, self.foreground, self.bf_scores() if self.boundary else None
        )


def evaluate_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    foreground: list[int],
    ignore_label: int | None = None,
    boundary: bool = True,
) -> SegmentationScores:
    """Dataset scores from an iterable of (prediction, truth) batches; same numbers as all at once."""
    acc = SegmentationAccumulator(num_classes, foreground, ignore_label, boundary)
    for pred, target in batches:
        acc.add(pred, target)
    return acc.scores()


def labels_from_logits(logits: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N, C, H, W) logits -> (N, H, W) int64 labels: argmax for C >= 2; for one sigmoid channel, label 1
    where sigmoid(logit) > threshold, computed stably as logit > log(t / (1 - t)) (no exp overflow)."""
    logits = np.asarray(logits)
    if logits.ndim != 4:
        raise UsageError(f"labels_from_logits: expected (N, C, H, W) logits, got shape {logits.shape}")
    if logits.shape[1] >= 2:
        return logits.argmax(axis=1)
    if logits.shape[1] != 1:
        raise UsageError(f"labels_from_logits: logits have no channel (shape {logits.shape})")
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"labels_from_logits: threshold must lie strictly between 0 and 1, got {threshold}")
    return (logits[:, 0] > math.log(threshold / (1.0 - threshold))).astype(np.int64)
