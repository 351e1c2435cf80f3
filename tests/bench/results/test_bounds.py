"""Bounds on a row column: one grammar for `tune --budget` and `run --fail-on`, on declared metrics only."""

import math

import pytest

from bench.errors import UsageError
from bench.results.bounds import Bound, parse_bounds, shortfall


def test_parse_and_margins_in_the_columns_unit() -> None:
    bound = Bound.parse("miou_drift>=-0.005")
    assert (bound.column, bound.op, bound.bound) == ("miou_drift", ">=", -0.005)
    assert bound.margin({"miou_drift": -0.002}) == pytest.approx(0.003)
    assert bound.holds({"miou_drift": -0.005})
    assert not bound.holds({"miou_drift": -0.0051})
    upper = Bound.parse(" latency_p50_ms <= 12.5 ")
    assert upper.margin({"latency_p50_ms": 10.0}) == pytest.approx(2.5)
    assert Bound.parse("gradcam_pearson@fakequant>=0.95").needs_gradcam
    assert Bound.parse("model_size_bytes<=3e6").bound == 3e6


@pytest.mark.parametrize("value", [None, math.nan, "error", True])
def test_a_missing_or_invalid_value_never_meets_a_bound(value: object) -> None:
    bound = Bound.parse("gradcam_pearson>=0.9")
    assert bound.margin({"gradcam_pearson": value}) is None
    assert not bound.holds({"gradcam_pearson": value})


@pytest.mark.parametrize("text", ["miou_drift>-0.005", "miou_drift>=", ">=0.1", "miou drift>=0.1", "miou_drift>=abc"])
@pytest.mark.parametrize("option", ["--budget", "--fail-on"])
def test_malformed_bounds_are_usage_errors_naming_the_option(text: str, option: str) -> None:
    with pytest.raises(UsageError, match=f"^{option} '{text}' is not valid; expected COLUMN>=NUMBER or COLUMN<=NUMBER"):
        parse_bounds([text], option)


def test_a_bound_on_an_undeclared_column_names_it_and_close_ones() -> None:
    with pytest.raises(UsageError, match=r"--fail-on 'mio_drift>=0': no column 'mio_drift' is declared; e\.g\. "):
        parse_bounds(["mio_drift>=0"], "--fail-on")


@pytest.mark.parametrize("text", ["latency_iterations>=30", "gradcam_zero_maps<=0", "cpu_other_pct<=10", "threads>=1"])
def test_a_bound_on_an_informational_column_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="is informational"):
        parse_bounds([text], "--fail-on")


def test_bounds_on_every_judged_kind_are_taken() -> None:
    texts = [
        "iou_nucleus_drift>=-0.01",
        "sqnr_db>=20",
        "speedup_vs_fp32>=2",
        "peak_rss_mib<=900",
        "bf_vs_reference>=0.9",
    ]
    assert [str(b) for b in parse_bounds(texts, "--fail-on")] == texts


def test_shortfall_says_which_bound_and_by_how_much() -> None:
    bounds = [Bound.parse("miou_drift>=-0.005"), Bound.parse("min_class_iou_drift>=-0.02")]
    missed = shortfall(bounds, {"miou_drift": -0.0075, "min_class_iou_drift": -0.01})
    assert missed == ["miou_drift>=-0.005: -0.0075, misses by 0.0025"]
    assert "no valid value" in shortfall(bounds[:1], {"status": "error: x"})[0]
    size = shortfall([Bound.parse("model_size_bytes<=2e6")], {"model_size_bytes": 2_500_000})
    assert size == ["model_size_bytes<=2000000: 2500000, misses by 500000"]
