"""Column declarations: every metric the records fill is declared, once, with the direction it is judged in.

The walk over a real run's results.parquet is in tests/test_declared_columns.py (it runs a benchmark);
here, the records' own column lists, which need no run.
"""

from __future__ import annotations

import math

import pytest

from bench.data.suite import get_suite, list_suites
from bench.gradcam.divergence import GradcamSummary
from bench.measure.quality import quality_columns
from bench.results.columns import (
    COLUMNS,
    GRADCAM_CORRELATION_THRESHOLD,
    PER_CLASS_THRESHOLD,
    SCORE_THRESHOLD,
    between_runs,
    column,
    judged,
    thresholds_text,
    undeclared,
)


@pytest.mark.parametrize("name", list_suites())
def test_every_quality_column_of_every_suite_is_judged_between_runs(name: str) -> None:
    suite = get_suite(name)
    columns = quality_columns(suite.classes, suite.foreground_classes, suite.ignore_label)
    assert undeclared(columns) == []
    assert between_runs(columns) == columns  # quality, drift, agreement, boundary, per-class and SQNR: all judged


def test_grad_cam_divergences_of_both_methods_and_further_layers_are_judged() -> None:
    for metric in GradcamSummary.__dataclass_fields__:
        for name in (metric, f"{metric}@fakequant", f"{metric}@decoder.3"):
            declared = column(name)
            assert declared is not None, name
            assert declared.judged == (metric != "gradcam_zero_maps"), name  # a count of all-zero maps is not a score
    assert column("gradcam_jsd@fakequant").better == "lower"
    assert column("gradcam_pearson@fakequant").threshold == GRADCAM_CORRELATION_THRESHOLD
    assert judged("gradcam_floor_pearson") is None  # the method's own noise: what verdicts are read against


@pytest.mark.parametrize(
    ("name", "kind", "better", "threshold"),
    [
        ("dice", "quality", "higher", SCORE_THRESHOLD),
        ("dice_drift", "drift", "higher", SCORE_THRESHOLD),  # the mean's drift, not a class called "drift"
        ("dice_nucleus", "per-class", "higher", PER_CLASS_THRESHOLD),
        ("iou_Pavement_drift", "per-class", "higher", PER_CLASS_THRESHOLD),
        ("iou_vs_reference_Sky", "per-class", "higher", PER_CLASS_THRESHOLD),
        ("min_class_iou_drift", "per-class", "higher", PER_CLASS_THRESHOLD),
        ("bf_vs_reference", "boundary", "higher", SCORE_THRESHOLD),
        ("sqnr_db", "sqnr", "higher", 1.0),
        ("latency_p99_ms", "latency", "lower", 0.10),
        ("speedup_vs_fp32", "speed", "higher", None),
        ("model_size_bytes", "size", "lower", None),
        ("backend_rss_mib", "memory", "lower", None),
        ("latency_cv", "informational", None, None),
        ("int8_ops", "informational", None, None),
    ],
)
def test_declarations_say_kind_direction_and_threshold(name, kind, better, threshold) -> None:
    declared = column(name)
    assert declared is not None
    assert (declared.kind, declared.better, declared.threshold) == (kind, better, threshold)


def test_an_unknown_column_is_declared_by_nothing() -> None:
    assert column("new_metric_nobody_declared") is None
    assert undeclared(["dice", "new_metric_nobody_declared"]) == ["new_metric_nobody_declared"]


def test_worse_by_follows_the_direction_and_latency_is_relative() -> None:
    assert column("dice").worse_by(0.90, 0.88) == pytest.approx(0.02)
    assert column("gradcam_jsd").worse_by(0.01, 0.02) == pytest.approx(0.01)
    assert column("latency_p50_ms").worse_by(10.0, 12.0) == pytest.approx(0.2)
    assert column("speedup_vs_fp32").worse_by(2.0, 3.0) < 0


def test_the_quality_threshold_option_replaces_score_thresholds_only() -> None:
    assert column("iou_Sky").noise(0.05) == 0.05
    assert column("sqnr_db").noise(0.05) == 1.0  # dB, not a score
    assert column("latency_p50_ms").noise(0.05) == 0.10
    assert "0.002: dice" in thresholds_text() and "1 dB: sqnr_db" in thresholds_text()
    assert "0.002" not in thresholds_text(0.05)


def test_every_declaration_is_complete() -> None:
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names)), "a column is declared twice"
    for declared in COLUMNS:
        assert (declared.kind == "informational") == (declared.better is None), declared.name
        if declared.threshold is not None:
            assert declared.judged and declared.threshold > 0 and math.isfinite(declared.threshold), declared.name


def test_sqnr_above_its_ceiling_is_float_rounding_and_never_worse() -> None:
    sqnr = column("sqnr_db")
    assert sqnr.ceiling == 60.0
    assert sqnr.worse_by(148.5, 141.0) == 0  # an fp32 row: float rounding moved, nothing was lost
    assert sqnr.worse_by(70.0, 44.0) == pytest.approx(16.0)  # from the ceiling down to int8 levels: a loss
