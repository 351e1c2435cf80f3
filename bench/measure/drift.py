"""Drift of a backend's predictions from the fp32 reference of the same model: every metric's change,
agreement of the two predictions (the reference taken as the truth), and the SQNR of the logits.

The reference is scored against the same truth with the same code (`bench.measure.metrics`), so a
drift is a difference of like with like; a negative drift is a loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bench.errors import UsageError
from bench.measure.metrics import ImageCounts, SegmentationAccumulator, SegmentationScores


def metric_drift(
    current: SegmentationScores, reference: SegmentationScores, class_names: list[str] | None = None
) -> dict[str, float]:
    """``<metric>_drift`` = current - reference for every scalar and per-class metric (negative: worse).

    NaN where either side is NaN (e.g. a class absent from both) or where BF was scored on one side only."""
    now, ref = current.as_dict(class_names), reference.as_dict(class_names)
    return {f"{name}_drift": now[name] - ref[name] if name in ref else float("nan") for name in now}


def pixel_agreement(pred: np.ndarray, reference: np.ndarray, target: np.ndarray, ignore_label: int | None) -> float:
    """Fraction of non-void pixels where two predictions give the same class."""
    valid = np.ones(target.shape, bool) if ignore_label is None else target != ignore_label
    return float((pred[valid] == reference[valid]).mean())


def reference_as_truth(
    reference: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int | None
) -> np.ndarray:
    """The reference prediction as a label map to score against, void (-1) wherever the truth is void."""
    target = np.asarray(target)
    valid = (target >= 0) & (target < num_classes)
    if ignore_label is not None:
        valid &= target != ignore_label
    return np.where(valid, reference, -1)


@dataclass(frozen=True)
class Drift:
    """A (quantized) prediction against the truth, the fp32 reference against the truth, and the
    prediction against the reference taken as truth (void pixels still from the truth)."""

    current: SegmentationScores
    reference: SegmentationScores
    agreement: SegmentationScores
    # per image, what the drift's bootstrap resamples (arrays: not compared, the scores above are)
    current_images: ImageCounts | None = field(default=None, compare=False)
    reference_images: ImageCounts | None = field(default=None, compare=False)

    @property
    def pixel_agreement(self) -> float:
        return self.agreement.global_accuracy

    @property
    def iou_vs_reference(self) -> tuple[float, ...]:
        return self.agreement.iou

    def metrics(self, class_names: list[str] | None = None) -> dict[str, float]:
        """Flat record: every ``<metric>_drift``, pixel agreement, and the IoU/BF of prediction vs reference."""
        out = metric_drift(self.current, self.reference, class_names)
        # the worst class: a budget on the mean lets one class collapse while the others hold
        class_drifts = [v for k, v in out.items() if k.startswith("iou_") and not math.isnan(v)]
        out["min_class_iou_drift"] = min(class_drifts) if class_drifts else float("nan")
        out["pixel_agreement"] = self.pixel_agreement
        out["miou_vs_reference"] = self.agreement.miou
        out["bf_vs_reference"] = self.agreement.mean_bf_score
        names = class_names if class_names is not None else [str(i) for i in range(len(self.agreement.iou))]
        out |= {f"iou_vs_reference_{name}": v for name, v in zip(names, self.agreement.iou)}
        return out


@dataclass
class DriftAccumulator:
    """Streaming `Drift`: add (prediction, reference, truth) batches."""

    num_classes: int
    foreground: list[int]
    ignore_label: int | None = None
    boundary: bool = True
    _current: SegmentationAccumulator = field(init=False)
    _reference: SegmentationAccumulator = field(init=False)
    _agreement: SegmentationAccumulator = field(init=False)

    def __post_init__(self) -> None:
        make = lambda: SegmentationAccumulator(self.num_classes, self.foreground, self.ignore_label, self.boundary)  # noqa: E731
        self._current, self._reference, self._agreement = make(), make(), make()

    def add(self, pred: np.ndarray, reference: np.ndarray, target: np.ndarray) -> None:
        self._current.add(pred, target)
        self._reference.add(reference, target)
        self._agreement.add(pred, reference_as_truth(reference, target, self.num_classes, self.ignore_label))

    def result(self) -> Drift:
        return Drift(
            self._current.scores(),
            self._reference.scores(),
            self._agreement.scores(),
            self._current.image_counts(),
            self._reference.image_counts(),
        )


def prediction_drift(
    pred: np.ndarray,
    reference: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    foreground: list[int],
    ignore_label: int | None = None,
    boundary: bool = True,
) -> Drift:
    """`Drift` of a whole prediction set against the fp32 reference prediction."""
    acc = DriftAccumulator(num_classes, foreground, ignore_label, boundary)
    acc.add(pred, reference, target)
    return acc.result()


def sqnr_db(reference: np.ndarray, output: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio 10*log10(sum(ref^2) / sum((ref - out)^2)) in dB, float64; +inf
    when identical. Use it on logits: it sees quantization error before argmax hides it."""
    acc = SqnrAccumulator()
    acc.add(reference, output)
    return acc.db


_SQNR_CHUNK = 1 << 20


@dataclass
class SqnrAccumulator:
    """SQNR over outputs that arrive batch by batch: sums of squares kept in float64."""

    signal: float = 0.0
    noise: float = 0.0
    count: int = 0

    def add(self, reference_batch: np.ndarray, output_batch: np.ndarray) -> None:
        ref = np.asarray(reference_batch)
        out = np.asarray(output_batch)
        if ref.shape != out.shape:
            raise UsageError(f"SQNR: reference shape {ref.shape} differs from output shape {out.shape}")
        ref, out = ref.ravel(), out.ravel()
        for start in range(0, ref.size, _SQNR_CHUNK):  # float64 in chunks: no 8-bytes-per-value copy of it all
            r = ref[start : start + _SQNR_CHUNK].astype(np.float64)
            d = r - out[start : start + _SQNR_CHUNK]
            self.signal += float(r @ r)
            self.noise += float(d @ d)
        self.count += ref.size

    @property
    def db(self) -> float:
        """NaN before any value was added; +inf when the outputs equal the reference."""
        if self.count == 0:
            return float("nan")
        if self.noise == 0.0:
            return float("inf")
        if self.signal == 0.0:
            return float("-inf")
        return 10.0 * math.log10(self.signal / self.noise)


def finite_sqnr(values: dict[str, float]) -> dict[str, float]:
    """Per-layer SQNR in dB made storable: inf (an exact match) kept as 200 dB, NaN dropped, since parquet
    and the tuner's rankings need numbers; shared by every runtime's layer SQNR probe."""
    return {k: (min(v, 200.0) if v > 0 else v) for k, v in values.items() if not math.isnan(v)}
