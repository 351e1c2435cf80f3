"""The evaluation stage: a session's predictions on the evaluation split, scored against the truth and
against the fp32 reference, as one record.

Logits are streamed batch by batch into labels and the SQNR accumulator, so the whole logits tensor
of the split is never held (it would inflate the process's peak memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.backend import Session
from bench.measure.bootstrap import drift_intervals
from bench.measure.drift import Drift, SqnrAccumulator, prediction_drift
from bench.measure.metrics import SegmentationScores, labels_from_logits, per_image_dice
from bench.results.intervals import Interval

NO_INTERVAL = "none: fewer than 2 evaluation images"


@dataclass(frozen=True)
class QualityResult:
    scores: SegmentationScores
    drift: Drift
    sqnr_db: float  # logits vs the fp32 reference logits
    class_names: tuple[str, ...]
    per_image_dice: np.ndarray  # foreground Dice of every evaluation image
    predictions_head: np.ndarray  # labels of the first evaluation images, for the Grad-CAM montage
    intervals: Mapping[str, Interval] = field(default_factory=dict)  # `<metric>_drift` -> its 95% interval

    def columns(self) -> dict[str, Any]:
        """Every quality metric, its drift from the reference, and agreement with the reference (per class
        too); each scalar drift's 95% interval (`<metric>_drift_ci_low/_ci_high`) and how it was found."""
        names = list(self.class_names)
        bounds: dict[str, float] = {}
        for name, interval in self.intervals.items():
            bounds |= {f"{name}_ci_low": interval.low, f"{name}_ci_high": interval.high}
        method = next(iter(self.intervals.values())).method if self.intervals else NO_INTERVAL
        return {
            **self.scores.as_dict(names),
            **self.drift.metrics(names),
            "sqnr_db": self.sqnr_db,
            **bounds,
            "drift_ci_method": method,
        }

    def image_count_columns(self) -> dict[str, np.ndarray]:
        """Each evaluation image's per-class counts, for per_image.parquet (`class_tp`, `class_fp`, `class_fn`)."""
        counts = self.drift.current_images
        return {} if counts is None else {"class_tp": counts.tp, "class_fp": counts.fp, "class_fn": counts.fn}


def predict(
    session: Session, images: np.ndarray, reference_logits: np.ndarray, batch_size: int, threshold: float
) -> tuple[np.ndarray, float]:
    """Labels (N, H, W) of the session, and the SQNR of its logits against the reference's, streamed."""
    sqnr = SqnrAccumulator()
    labels = []
    for i in range(0, len(images), batch_size):
        logits = session.to_numpy(session.run(session.to_input(images[i : i + batch_size]))).astype(np.float32)
        sqnr.add(reference_logits[i : i + batch_size], logits)
        labels.append(labels_from_logits(logits, threshold))
    return np.concatenate(labels), sqnr.db


def evaluate(
    session: Session,
    images: np.ndarray,
    masks: np.ndarray,
    reference_logits: np.ndarray,
    class_names: tuple[str, ...],
    foreground: list[int],
    ignore_label: int | None,
    batch_size: int,
    threshold: float,
    keep: int,
) -> QualityResult:
    """Score the session on normalized `images` (truth `masks`); keep the first `keep` label maps."""
    preds, sqnr = predict(session, images, reference_logits, batch_size, threshold)
    n = len(class_names)
    reference = labels_from_logits(reference_logits, threshold)
    drift = prediction_drift(preds, reference, masks, n, foreground, ignore_label)
    assert drift.current_images is not None and drift.reference_images is not None
    return QualityResult(
        scores=drift.current,
        drift=drift,
        sqnr_db=sqnr,
        class_names=class_names,
        per_image_dice=per_image_dice(preds, masks, n, foreground, ignore_label),
        predictions_head=preds[:keep],
        intervals=drift_intervals(drift.current_images, drift.reference_images, foreground),
    )


def quality_columns(class_names: tuple[str, ...], foreground: list[int], ignore_label: int | None) -> list[str]:
    """The names of every column `QualityResult.columns` fills for these classes (scored on a 1x2x2
    stand-in prediction), so a budget on a column can be checked before any work."""
    labels = np.zeros((1, 2, 2), np.int64)
    drift = prediction_drift(labels, labels, labels, len(class_names), foreground, ignore_label)
    return [*drift.current.as_dict(list(class_names)), *drift.metrics(list(class_names)), "sqnr_db"]
