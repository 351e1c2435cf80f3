"""The verdict of a finished run's rows: error cells, and every --fail-on bound each row holds or misses."""

from __future__ import annotations

from typing import Any

from bench.results.bounds import parse_bounds
from bench.results.verdict import NOISY, judge_rows

IDENTITY = {"suite": "s", "model": "unet", "device": "cpu", "batch_size": 1}


def _row(backend: str, precision: str = "int8", status: str = "ok", **columns: Any) -> dict[str, Any]:
    return {**IDENTITY, "backend": backend, "precision": precision, "status": status, **columns}


def _bounds(*texts: str):
    return parse_bounds(texts, "--fail-on")


def test_an_error_cell_fails_the_run_and_an_unavailable_one_does_not() -> None:
    rows = [
        _row("torch-eager", "fp32"),
        _row("tensorrt-int8", status="unavailable: tensorrt is not importable"),
        _row("dummy-fake-int8", status="error: the artifact contains no int8 operator"),
    ]
    verdict = judge_rows(rows)
    assert verdict.exit_code == 1
    assert verdict.errors == ("s/unet/dummy-fake-int8/int8/cpu/1: error: the artifact contains no int8 operator",)
    assert judge_rows(rows[:2]).exit_code == 0  # unavailable: the backend cannot run here, nothing failed
    assert judge_rows(rows[:2]).lines(()) == []


def test_a_missed_bound_names_the_row_its_value_and_the_margin() -> None:
    rows = [_row("ort-qdq-int8", dice_drift=-0.004), _row("torch-fx-int8", dice_drift=-0.0005)]
    bounds = _bounds("dice_drift>=-0.001")
    verdict = judge_rows(rows, bounds)
    assert verdict.exit_code == 1 and verdict.judged == 2
    assert verdict.failed == ("s/unet/ort-qdq-int8/int8/cpu/1: dice_drift>=-0.001: -0.0040, misses by 0.0030",)
    assert (
        verdict.lines(bounds)[0] == "--fail-on dice_drift>=-0.001: 1 of 2 judged row bound(s) held, 1 failed (exit 1):"
    )
    assert judge_rows(rows, _bounds("dice_drift>=-0.005")).exit_code == 0


def test_latency_and_speed_bounds_are_not_judged_on_noisy_timing_but_quality_is() -> None:
    noisy = "noisy: other processes used 45% of the CPU"
    rows = [_row("ort", "fp32", latency_p50_ms=30.0, speedup_vs_fp32=0.5, dice=0.5, timing_quality=noisy)]
    verdict = judge_rows(rows, _bounds("latency_p50_ms<=12", "speedup_vs_fp32>=1", "throughput_ips>=100", "dice>=0.9"))
    assert verdict.not_judged == tuple(
        f"s/unet/ort/fp32/cpu/1: {b}: {NOISY}"
        for b in ("latency_p50_ms<=12", "speedup_vs_fp32>=1", "throughput_ips>=100")
    )
    assert verdict.failed == ("s/unet/ort/fp32/cpu/1: dice>=0.9: 0.5000, misses by 0.4000",)
    quiet = [{**rows[0], "timing_quality": "ok"}]
    assert len(judge_rows(quiet, _bounds("latency_p50_ms<=12", "speedup_vs_fp32>=1")).failed) == 2
    # rounds that only disagreed: the latency's level moved (not judged), the ratio paired by cycle stands
    disagreed = [{**rows[0], "timing_quality": "noisy: rounds disagreed (their medians spread 12%)"}]
    verdict = judge_rows(disagreed, _bounds("latency_p50_ms<=12", "speedup_vs_fp32>=1"))
    assert verdict.not_judged == (f"s/unet/ort/fp32/cpu/1: latency_p50_ms<=12: {NOISY}",) and len(verdict.failed) == 1


def test_the_fp32_reference_is_not_judged_on_what_is_measured_against_it() -> None:
    rows = [
        _row("torch-eager", "fp32", speedup_vs_fp32=1.0, dice_drift=0.0, model_size_bytes=7_800_000),
        _row("ort-qdq-int8", speedup_vs_fp32=3.0, dice_drift=-0.0002, model_size_bytes=2_000_000),
    ]
    verdict = judge_rows(rows, _bounds("speedup_vs_fp32>=2", "dice_drift>=-0.001"))
    assert verdict.exit_code == 0 and verdict.judged == 2  # the int8 row's two; eager's speedup is 1 by definition
    size = judge_rows(rows, _bounds("model_size_bytes<=3e6"))  # size is the reference's own: judged
    assert size.failed == ("s/unet/torch-eager/fp32/cpu/1: model_size_bytes<=3000000: 7800000, misses by 4800000",)


def test_rows_without_a_value_or_unavailable_are_named_not_failed() -> None:
    rows = [
        _row("ort-qdq-int8", gradcam_pearson=float("nan")),
        _row("tensorrt-int8", status="unavailable: tensorrt is not importable"),
    ]
    bounds = _bounds("gradcam_pearson>=0.99")
    verdict = judge_rows(rows, bounds)
    assert verdict.exit_code == 0 and verdict.judged == 0
    assert verdict.not_judged == (
        "s/unet/ort-qdq-int8/int8/cpu/1: gradcam_pearson>=0.99: not judged: no value",
        "s/unet/tensorrt-int8/int8/cpu/1: unavailable, no bound judged",
    )
    assert verdict.lines(bounds)[0] == "--fail-on gradcam_pearson>=0.99: 0 of 0 judged row bound(s) held"


def test_rows_of_several_nodes_say_which_node() -> None:
    rows = [_row("ort", "fp32", status="error: node lost (10.0.0.2)", node="10.0.0.2")]
    assert judge_rows(rows).errors == ("s/unet/ort/fp32/cpu/1 on 10.0.0.2: error: node lost (10.0.0.2)",)


def test_a_scenarios_column_is_judged_by_its_own_scenarios_noise_flag() -> None:
    """`server_p99_ms` of a row whose single-stream timing was noisy but whose server scenario was quiet is
    judged; the other way round it is not (`Column.quality_column`)."""
    quiet_server = _row("a", timing_quality="noisy: slow host phase", server_timing_quality="ok", server_p99_ms=30.0)
    noisy_server = _row("b", timing_quality="ok", server_timing_quality="noisy: other processes", server_p99_ms=30.0)
    verdict = judge_rows([quiet_server, noisy_server], _bounds("server_p99_ms<=20", "offline_ips>=100"))
    assert verdict.failed == ("s/unet/a/int8/cpu/1: server_p99_ms<=20: 30, misses by 10",)
    assert f"s/unet/b/int8/cpu/1: server_p99_ms<=20: {NOISY}" in verdict.not_judged
