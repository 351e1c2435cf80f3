"""What tune adds to a bound: budgets on the columns it scores on every variant, of this suite's classes."""

import pytest

from bench.errors import UsageError
from bench.tune.budget import check_columns, parse_budgets


@pytest.mark.parametrize("text", ["latency_p50_ms<=12", "speedup_vs_fp32>=2", "model_size_bytes<=3e6"])
def test_a_budget_on_timing_size_or_memory_points_to_fail_on(text: str) -> None:
    with pytest.raises(UsageError, match="which tune does not measure on every variant.*segbench run --fail-on"):
        parse_budgets([text])


def test_budgets_on_scored_kinds_are_taken() -> None:
    texts = ["miou_drift>=-0.005", "sqnr_db>=25", "pixel_agreement>=0.99", "gradcam_pearson@fakequant>=0.9"]
    assert [str(b) for b in parse_budgets(texts)] == texts


def test_informational_and_unknown_columns_are_refused() -> None:
    with pytest.raises(UsageError, match="--budget 'gradcam_floor_pearson>=0.9': 'gradcam_floor_pearson' is inform"):
        parse_budgets(["gradcam_floor_pearson>=0.9"])
    with pytest.raises(UsageError, match="no column 'mio_drift' is declared"):
        parse_budgets(["mio_drift>=0"])


def test_a_class_the_suite_does_not_have_is_named() -> None:
    [budget] = parse_budgets(["iou_nucleos_drift>=0"])  # declared (per class), but a typo of the class
    with pytest.raises(UsageError, match="no column 'iou_nucleos_drift'"):
        check_columns([budget], ["iou_nucleus_drift", "dice_drift"])
    check_columns(parse_budgets(["iou_nucleus_drift>=0"]), ["iou_nucleus_drift"])
