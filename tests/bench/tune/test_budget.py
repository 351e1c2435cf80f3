import math

import pytest

from bench.errors import UsageError
from bench.tune.budget import Budget, check_columns, shortfall


def test_parse_and_margins_in_the_columns_unit() -> None:
    budget = Budget.parse("miou_drift>=-0.005")
    assert (budget.column, budget.op, budget.bound) == ("miou_drift", ">=", -0.005)
    assert budget.margin({"miou_drift": -0.002}) == pytest.approx(0.003)
    assert budget.holds({"miou_drift": -0.005})
    assert not budget.holds({"miou_drift": -0.0051})
    upper = Budget.parse(" latency_p50_ms <= 12.5 ")
    assert upper.margin({"latency_p50_ms": 10.0}) == pytest.approx(2.5)
    assert Budget.parse("gradcam_pearson@fakequant>=0.95").needs_gradcam


@pytest.mark.parametrize("value", [None, math.nan, "error", True])
def test_a_missing_or_invalid_value_never_meets_a_budget(value: object) -> None:
    budget = Budget.parse("gradcam_pearson>=0.9")
    assert budget.margin({"gradcam_pearson": value}) is None
    assert not budget.holds({"gradcam_pearson": value})


@pytest.mark.parametrize("text", ["miou_drift>-0.005", "miou_drift>=", ">=0.1", "miou drift>=0.1", "miou_drift>=abc"])
def test_malformed_budgets_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--budget"):
        Budget.parse(text)


def test_unknown_columns_are_named() -> None:
    with pytest.raises(UsageError, match="no column 'mio_drift'"):
        check_columns([Budget.parse("mio_drift>=0")], ["miou_drift", "dice_drift"])
    check_columns([Budget.parse("miou_drift>=0")], ["miou_drift"])


def test_shortfall_says_which_budget_and_by_how_much() -> None:
    budgets = [Budget.parse("miou_drift>=-0.005"), Budget.parse("min_class_iou_drift>=-0.02")]
    missed = shortfall(budgets, {"miou_drift": -0.0075, "min_class_iou_drift": -0.01})
    assert missed == ["miou_drift>=-0.005: -0.0075, misses by 0.0025"]
    assert "no valid value" in shortfall(budgets[:1], {"status": "error: x"})[0]
