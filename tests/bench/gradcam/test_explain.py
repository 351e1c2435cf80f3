"""Which maps fill the row, the method's noise floor, and when the maps cannot be trusted."""

from __future__ import annotations

import numpy as np

from bench.backend import GradcamMaps
from bench.gradcam.divergence import GradcamSummary
from bench.gradcam.explain import (
    FP32_FD_MIN_PEARSON,
    SIMULATION_TOLERANCE,
    GradcamResult,
    _missing_status,
    _other_method,
    _pick,
    _status,
    _zero_reference,
    mean_pearson,
)

METHODS = ("finite-difference", "fake-quant")


def _maps(method: str, step: int | None = None, **kw) -> GradcamMaps:
    return GradcamMaps(
        maps={"layer": np.ones((1, 1, 4, 4), np.float32)}, method=method, seconds_per_image=1.0, step=step, **kw
    )


def _summary(pearson: float, zero: int = 0) -> GradcamSummary:
    return GradcamSummary(pearson, pearson, 0.9, 0.01, zero)


def test_the_primary_is_the_first_method_asked_for_at_the_requests_step() -> None:
    fd4, fd2, fd8, fq = (
        _maps("finite-difference", 4),
        _maps("finite-difference", 2),
        _maps("finite-difference", 8),
        _maps("fake-quant"),
    )
    assert _pick([fd2, fd4, fd8, fq], ("finite-difference", "fake-quant"), 4) == (fd4, fq)
    assert _pick([fd4, fq], ("fake-quant",), 4) == (fq, fd4)
    assert _pick([_maps("autograd")], ("finite-difference", "fake-quant"), 4)[0].method == "autograd"


def test_fp32_finite_differences_that_disagree_with_autograd_are_invalid() -> None:
    reference = np.ones((2, 1, 4, 4))
    fd = _maps("finite-difference", 4, vs_deployed_max_abs=0.0)
    assert _status(fd, _summary(0.9999), reference, "fp32") == "ok"
    assert _status(fd, _summary(0.99), reference, "fp32").startswith("invalid: ")
    assert str(FP32_FD_MIN_PEARSON) in _status(fd, _summary(0.99), reference, "fp32")
    zero = _status(fd, _summary(float("nan"), zero=2), reference, "fp32")
    assert zero.startswith("invalid: ") and "2 all-zero maps where fp32 autograd gave 0" in zero
    assert _status(fd, _summary(0.5), reference, "int8") == "ok"  # int8 may drift: that is the finding


def test_maps_of_a_simulation_far_from_the_deployed_program_say_so() -> None:
    reference = np.ones((1, 1, 4, 4))
    near = _maps("finite-difference", 4, vs_deployed_max_abs=0.1, vs_deployed_scale=10.0)
    far = _maps("finite-difference", 4, vs_deployed_max_abs=9.9, vs_deployed_scale=20.0)
    assert _status(near, _summary(0.9), reference, "int8") == "ok"
    status = _status(far, _summary(0.9), reference, "int8")
    assert status.startswith("simulation: ") and "9.9" in status and f"{100 * SIMULATION_TOLERANCE:.0f}%" in status


def _result(
    pearson: float, method_pearson: float | None, step_pearson: float | None, status: str = "ok"
) -> GradcamResult:
    return GradcamResult(
        method="finite-difference",
        note="",
        summaries={"layer": _summary(pearson)},
        status=status,
        cut="onnx",
        second_method="fake-quant",
        second={"layer": _summary(0.99)},
        method_pearson=method_pearson,
        step_pearson=step_pearson,
        records=[{"method": "finite-difference"}, {"method": "fake-quant"}],
    )


def test_a_flagged_simulation_is_no_floor() -> None:
    from dataclasses import replace

    flagged = replace(_result(0.81, 0.80, 0.95), second_status="simulation: 2.1% off")
    assert flagged.floor_pearson == 0.95 and flagged.within_noise is False  # 0.19 > 2 x 0.05


def test_a_divergence_within_twice_the_methods_own_is_noise() -> None:
    assert _result(0.81, 0.90, 0.95).floor_pearson == 0.90
    assert _result(0.81, 0.90, 0.95).within_noise is True  # 0.19 <= 2 x 0.10
    assert _result(0.70, 0.90, 0.95).within_noise is False  # 0.30 > 0.20
    assert _result(0.70, None, None).within_noise is None  # no floor measured: no verdict


def test_columns_carry_both_methods_and_the_floors() -> None:
    columns = _result(0.81, 0.90, 0.95).columns()
    assert columns["gradcam_pearson"] == 0.81 and columns["gradcam_pearson@fakequant"] == 0.99
    assert columns["gradcam_method_pearson"] == 0.90 and columns["gradcam_step_pearson"] == 0.95
    assert columns["gradcam_floor_pearson"] == 0.90 and columns["gradcam_within_noise"] is True
    assert columns["gradcam_status"] == "ok" and columns["gradcam_cut"] == "onnx"
    assert "gradcam_status@fakequant" in columns  # the simulation's own distance from the deployed program


def test_an_invalid_method_publishes_no_numbers() -> None:
    result = _result(0.5, 0.9, 0.9).invalidated("the cut is wrong")
    columns = result.columns()
    assert columns["gradcam_status"] == "invalid: the cut is wrong"
    assert "gradcam_pearson" not in columns and columns["gradcam_floor_pearson"] is None
    assert columns["gradcam_within_noise"] is None
    assert [r["method"] for r in result.records] == ["fake-quant"]  # the invalid method's records are gone


def test_mean_pearson_leaves_out_all_zero_pairs() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 1, 8, 8))
    b = a.copy()
    b[1] = 0.0
    assert mean_pearson(a, b) == 1.0


def test_a_failed_stage_says_so_in_both_status_columns_and_publishes_no_numbers() -> None:
    failed = GradcamResult.failed("error: RuntimeError: 'stop' input is not a scalar", methods=METHODS)
    columns = failed.columns()
    assert columns["gradcam_status"] == "error: RuntimeError: 'stop' input is not a scalar"
    assert columns["gradcam_status@fakequant"] == columns["gradcam_status"]
    assert columns["gradcam_note"] == columns["gradcam_status"] and "gradcam_pearson" not in columns
    only_fd = GradcamResult.failed("not available: tensorrt engines cannot be cut", methods=("finite-difference",))
    assert only_fd.columns() == {
        "gradcam_method": None,
        "gradcam_note": "not available: tensorrt engines cannot be cut",
        "gradcam_status": "not available: tensorrt engines cannot be cut",
    }


def test_the_second_method_without_maps_says_whether_it_raised_or_cannot_run() -> None:
    try:
        raise RuntimeError("the simulation diverged\nat node 12")
    except RuntimeError as exc:
        raised = GradcamMaps.failed("fake-quant", exc)
    assert raised.error == "RuntimeError: the simulation diverged at node 12" and not raised.maps
    fd = _maps("finite-difference", 4)
    assert _missing_status([fd, raised], "fake-quant", "ort-qdq-int8", "int8") == f"error: {raised.error}"
    unsupported = GradcamMaps.without_maps("fake-quant", "fake-quant not possible: MaxPool with indices")
    assert _missing_status([fd, unsupported], "fake-quant", "ort-qdq-int8", "int8") == (
        "not available: fake-quant not possible: MaxPool with indices"
    )
    assert _missing_status([fd], "fake-quant", "openvino-int8", "int8") == (
        "not available: openvino-int8 gives no fake-quant maps"
    )
    assert _missing_status([fd], "fake-quant", "ort", "fp32") == "not available: nothing quantized to simulate in fp32"
    assert _missing_status([fd], None, "ort", "fp32") is None  # only one method asked for
    assert _other_method(METHODS, "finite-difference") == "fake-quant"
    assert _other_method(METHODS, "autograd") == "fake-quant"  # the float reference: nothing to simulate
    assert _other_method(("finite-difference",), "autograd") is None


def test_a_second_method_that_failed_has_its_status_without_numbers() -> None:
    from dataclasses import replace

    result = replace(_result(0.9, None, 0.95), second={}, second_status="error: RuntimeError: diverged")
    columns = result.columns()
    assert columns["gradcam_status"] == "ok" and columns["gradcam_pearson"] == 0.9
    assert columns["gradcam_status@fakequant"] == "error: RuntimeError: diverged"
    assert "gradcam_pearson@fakequant" not in columns


def test_a_layer_whose_fp32_maps_are_all_zero_explains_nothing_and_says_why() -> None:
    zero = _zero_reference(np.zeros((4, 1, 8, 8)), "gate", ["nucleus"])
    assert zero is not None and zero.startswith("not available: the fp32 Grad-CAM maps at gate are zero")
    assert "(nucleus)" in zero and "--gradcam-layer" in zero and "\n" not in zero
    some = np.zeros((4, 1, 8, 8))
    some[3, 0, 2, 2] = 1e-3  # one pixel of one image is something to compare
    assert _zero_reference(some, "gate", ["nucleus"]) is None
