"""The profile stage's record: the row's profile columns and profile.parquet's rows."""

import pytest

from bench.backend.profiling import OpTime, Profile, op_category
from bench.measure.profile import PROFILE_COLUMNS, ProfileResult


def _profile() -> Profile:
    return Profile(
        method="test profiler",
        calls=10,
        wall_us=120_000.0,  # 12 ms per run with the profiler on
        ops=(
            OpTime("conv_a", "QLinearConv", "enc.0", "int8", 10, 60_000.0),
            OpTime("dq", "DequantizeLinear", "", "fp32", 20, 20_000.0),
            OpTime("pool", "MaxPool", "", "fp32", 10, 10_000.0),
            OpTime("conv_b", "Conv", "head", "fp32", 10, 10_000.0),
        ),
        attribution="test",
    )


@pytest.mark.parametrize(
    ("op_type", "category"),
    [
        ("QuantizeLinear", "quantize"),
        ("aten::quantize_per_tensor", "quantize"),
        ("FakeQuantize", "quantize"),
        ("DequantizeLinear", "dequantize"),
        ("aten::dequantize", "dequantize"),
        ("quantized::requantize", "requantize"),
        ("Reorder", "reorder"),
        ("Transpose", "reorder"),
        ("aten::transpose", "reorder"),
        ("ConvTranspose", "compute"),
        ("aten::conv_transpose2d", "compute"),
        ("ConvolutionBackpropData", "compute"),
        ("cpp_fused__prelu_kernel_max_pool2d_with_indices_quantize_per_tensor", "compute"),
        ("cpp_fused_quantize_per_tensor", "quantize"),
        ("cpp_fused_dequantize_per_tensor_2", "dequantize"),
        ("cpp_fused_dequantize_per_tensor_quantize_per_tensor_3", "requantize"),
        ("aten::contiguous", "reorder"),
        ("QLinearConv", "compute"),
        ("quantized::conv2d_relu", "compute"),
        ("onednn::qconv2d_pointwise", "compute"),
        ("Convolution", "compute"),
    ],
)
def test_op_categories_keep_int8_compute_apart_from_entering_and_leaving_int8(op_type, category):
    assert op_category(op_type) == category


def test_an_unknown_category_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        OpTime("x", "Conv", "", "fp32", 1, 1.0, category="magic")


def test_columns_state_the_profilers_cost_and_coverage_against_the_unprofiled_p50():
    result = ProfileResult.of(_profile(), "ort-qdq-int8")
    columns = ProfileResult(result.status, result.profile, p50_ms=10.0).columns()
    assert columns["profile_status"] == "ok"
    assert columns["profile_ms_per_run"] == pytest.approx(12.0)
    assert columns["profile_overhead_pct"] == pytest.approx(20.0)  # 12 ms profiled vs 10 ms p50
    assert columns["profile_ops_ms_per_run"] == pytest.approx(10.0)
    assert columns["profile_ops_vs_p50_pct"] == pytest.approx(100.0)
    assert columns["profile_layer_attributed_pct"] == pytest.approx(70.0)
    assert columns["profile_qdq_reorder_pct"] == pytest.approx(20.0)


def test_records_are_one_per_operator_largest_first_with_time_per_run():
    records = ProfileResult.of(_profile(), "x").records()
    assert [r["name"] for r in records] == ["conv_a", "dq", "pool", "conv_b"]
    assert set(records[0]) == set(PROFILE_COLUMNS)
    assert records[1]["mean_us"] == pytest.approx(1000.0) and records[1]["us_per_run"] == pytest.approx(2000.0)


def test_a_backend_without_profiler_says_so_and_has_no_records():
    result = ProfileResult.of(None, "dummy-threshold")
    assert result.columns() == {"profile_status": "not available: dummy-threshold has no profiler"}
    assert result.records() == []


def test_an_empty_profile_is_an_error_not_a_zero():
    empty = Profile("p", 5, 100.0, (), "none")
    assert ProfileResult.of(empty, "x").status == "error: the profiler reported no operator"
