"""`--fail-on` bounds checked against the run's configuration before any work."""

from __future__ import annotations

import pytest

from bench.errors import UsageError
from bench.run.config import RunConfig
from bench.run.fail_on import check_fail_on


def test_bounds_the_run_can_fill_are_taken() -> None:
    texts = ["iou_nucleus_drift>=-0.01", "min_class_iou_drift>=-0.02", "gradcam_pearson@fakequant>=0.9"]
    texts += ["speedup_vs_fp32>=1", "latency_p50_ms<=20", "model_size_bytes<=3000000", "sqnr_db>=20"]
    assert [str(b) for b in check_fail_on(texts, RunConfig())] == texts
    assert check_fail_on([], RunConfig()) == ()


@pytest.mark.parametrize(
    ("text", "config", "message"),
    [
        ("iou_nucleos_drift>=0", RunConfig(), "no suite of this run has a column 'iou_nucleos_drift'; e.g. iou_"),
        ("iou_sky>=0.5", RunConfig(suites=("synthetic-nuclei", "synthetic-scenes")), None),
        ("iou_sky>=0.5", RunConfig(), "no suite of this run has a column 'iou_sky'"),
        ("gradcam_pearson>=0.9", RunConfig(gradcam=False), "a Grad-CAM column, but the run has --no-gradcam"),
        (
            "gradcam_jsd@fakequant<=0.1",
            RunConfig(gradcam_method="fd"),
            "@fakequant columns come with --gradcam-method both",
        ),
        ("peak_device_mib<=500", RunConfig(), "device memory is measured with --device cuda only"),
        ("timing_rounds>=3", RunConfig(), "'timing_rounds' is informational"),
        ("dice_drift=>0", RunConfig(), "is not valid; expected COLUMN>=NUMBER"),
    ],
)
def test_bounds_no_row_of_this_run_could_fill_are_refused(text: str, config: RunConfig, message: str | None) -> None:
    if message is None:
        check_fail_on([text], config)
        return
    with pytest.raises(UsageError, match=f"^--fail-on '.*': {message}|^--fail-on '{text}' {message}"):
        check_fail_on([text], config)
