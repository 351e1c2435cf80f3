import numpy as np
import pytest

from bench.errors import UsageError
from bench.measure.drift import (
    DriftAccumulator,
    SqnrAccumulator,
    metric_drift,
    pixel_agreement,
    prediction_drift,
    sqnr_db,
)
from bench.measure.metrics import confusion_matrix
from tests.bench.measure.test_metrics import PRED3, TRUTH3, VOID, _scene

TARGET = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 0, 1]])


def test_ignore_label_is_excluded():
    target = np.array([0, 1, 2, 2])
    pred = np.array([0, 1, 0, 1])
    cm = confusion_matrix(pred, target, 2, ignore_label=2)
    assert cm.sum() == 2 and np.trace(cm) == 2
    assert pixel_agreement(pred, np.array([0, 1, 1, 1]), target, ignore_label=2) == 1.0


def test_drift_against_the_reference():
    reference = TRUTH3.copy()
    reference[3, 3] = 1  # void in the truth: never counted
    reference[0, 0] = 1
    drift = prediction_drift(PRED3[None], reference[None], TRUTH3[None], 3, [1, 2], VOID)
    # pixel agreement over the 15 non-void pixels: the prediction differs from the reference at (0,0),
    # (0,1), (2,1) and (2,3) -> 11/15
    assert drift.pixel_agreement == pytest.approx(11 / 15)
    assert drift.pixel_agreement == pytest.approx(pixel_agreement(PRED3, reference, TRUTH3, VOID))
    # IoU with the reference as truth: reference counts 0: 3, 1: 7, 2: 5; confusion (rows reference)
    #   ref 0 -> [2, 1, 0] ((0,1) -> 1), ref 1 -> [1, 5, 1] ((0,0) -> 0, (2,3) -> 2), ref 2 -> [1, 0, 4]
    #   IoU0 = 2/(2+2+1), IoU1 = 5/(5+1+2), IoU2 = 4/(4+1+1)
    assert drift.iou_vs_reference == pytest.approx((2 / 5, 5 / 8, 4 / 6))
    record = drift.metrics(["a", "b", "c"])
    assert record["iou_vs_reference_b"] == pytest.approx(5 / 8)
    assert record["miou_drift"] == pytest.approx(drift.current.miou - drift.reference.miou)
    assert record["iou_c_drift"] == pytest.approx(drift.current.iou[2] - drift.reference.iou[2])
    assert record["mean_bf_score_drift"] == pytest.approx(drift.current.mean_bf_score - drift.reference.mean_bf_score)
    assert "bf_a_drift" in record and "weighted_iou_drift" in record and "mean_accuracy_drift" in record


def test_identical_prediction_has_no_drift_and_streaming_drift_matches():
    pred, truth = _scene(np.random.default_rng(5))
    same = prediction_drift(pred, pred, truth, 3, [1, 2], VOID)
    assert same.pixel_agreement == 1.0 and same.agreement.mean_bf_score == 1.0
    assert all(v == 0 for k, v in metric_drift(same.current, same.reference).items() if np.isfinite(v))
    reference = np.roll(pred, 1, axis=2)
    acc = DriftAccumulator(3, [1, 2], VOID)
    for i in range(0, 6, 4):
        acc.add(pred[i : i + 4], reference[i : i + 4], truth[i : i + 4])
    assert acc.result() == prediction_drift(pred, reference, truth, 3, [1, 2], VOID)


def test_sqnr():
    # signal 1 + 1 = 2, noise 0.1^2 + 0.1^2 = 0.02: 10 * log10(100) = 20 dB
    assert sqnr_db(np.array([1.0, 1.0]), np.array([1.1, 0.9])) == pytest.approx(20.0)
    assert sqnr_db(np.array([1.0, -2.0]), np.array([1.0, -2.0])) == float("inf")
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5, 2, 4, 4)).astype(np.float32)
    out = ref + rng.normal(scale=0.01, size=ref.shape).astype(np.float32)
    acc = SqnrAccumulator()
    for i in range(0, 5, 2):
        acc.add(ref[i : i + 2], out[i : i + 2])
    assert acc.db == pytest.approx(sqnr_db(ref, out), rel=1e-12)
    assert 35 < acc.db < 45  # unit signal, 0.01 noise -> about 40 dB
    assert np.isnan(SqnrAccumulator().db)
    with pytest.raises(UsageError, match="shape"):
        sqnr_db(np.zeros(3), np.zeros(4))
