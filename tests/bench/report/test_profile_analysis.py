"""The profiles' tables (`segbench run --profile`): layers across backends, overhead buckets, each int8 cell
against its float counterpart, from a hand-written profiled run folder (no benchmark runs here)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bench.report.profile_analysis import (
    attribution_tables,
    contributors,
    counterparts,
    not_faster_layers,
    overhead_buckets,
    top_layers,
)
from bench.results.counterparts import float_counterpart
from tests.bench.report.profiled_run import ENET, OPS, cell, make_run, run_tables


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def test_each_int8_cell_is_compared_with_its_runtimes_float_cell_else_torch_eager() -> None:
    ran = {("torch-eager", "fp32"), ("ort", "fp32"), ("openvino", "fp32"), ("tensorrt-fp16", "fp16")}
    assert float_counterpart("ort-qdq-int8", "int8", ran) == ("ort", "fp32")
    assert float_counterpart("openvino-int8", "int8", ran) == ("openvino", "fp32")
    assert float_counterpart("tensorrt-int8", "int8", ran) == ("tensorrt-fp16", "fp16")
    assert float_counterpart("torch-fx-int8", "int8", ran) == ("torch-eager", "fp32")
    assert float_counterpart("torchao-pt2e-int8", "int8", ran) == ("torch-eager", "fp32")
    assert float_counterpart("openvino-int8", "int8", {("torch-eager", "fp32")}) == ("torch-eager", "fp32")
    assert float_counterpart("ort-qdq-int8", "int8", set()) is None
    assert float_counterpart("ort", "fp32", ran) is None


def test_counterparts_are_found_among_the_cells_that_ran_in_the_same_group(run: Path) -> None:
    pairs = counterparts(pd.read_parquet(run / "results.parquet"))
    eager = cell(("camvid", "enet", "torch-eager", "fp32"))
    assert pairs[cell(("camvid", "enet", "ort-qdq-int8", "int8"))] == cell(("camvid", "enet", "ort", "fp32"))
    assert pairs[cell(("camvid", "enet", "torch-fx-int8", "int8"))] == eager
    assert pairs[cell(("camvid", "enet", "openvino-int8", "int8"))] == eager  # no openvino fp32 in the run
    assert pairs[cell(("camvid", "enet", "tensorrt-int8", "int8"))] == eager  # no tensorrt-fp16 either
    assert pairs[cell(("camvid", "unet", "ort-qdq-int8", "int8"))] == cell(("camvid", "unet", "ort", "fp32"))
    assert pairs[cell(("camvid", "unet", "torchao-pt2e-int8", "int8"))] is None  # unet has no torch-eager
    assert cell(("camvid", "enet", "ort", "fp32")) not in pairs


def test_the_attribution_table_puts_every_layer_under_every_backend_and_sums_to_the_ops(run: Path) -> None:
    profile, results = run_tables(run)
    tables = attribution_tables(profile, results)
    assert set(tables) == {ENET, ("camvid", "unet", "cpu", 1, "")}
    table = tables[ENET]
    # each float cell, then the int8 cells judged against it
    assert list(table.columns) == [
        "torch-eager:fp32",
        "torch-fx-int8:int8",
        "openvino-int8:int8",
        "ort:fp32",
        "ort-qdq-int8:int8",
    ]
    kinds = list(table.index.get_level_values("kind"))
    assert kinds[-5:] == ["quantize", "dequantize", "requantize", "reorder", "unattributed"]
    assert list(table.index.get_level_values("item")[:3]) == ["enc.conv1", "enc.conv2", "decoder.up1"]
    assert table.loc[("layer", "decoder.up1"), "ort-qdq-int8:int8"] == pytest.approx(4.0)  # its dequantize is not in
    assert table.loc[("layer", "enc.conv1"), "ort-qdq-int8:int8"] == pytest.approx(3.5)  # nor its quantize
    assert table.loc[("layer", "enc.conv1"), "openvino-int8:int8"] == pytest.approx(3.0)
    assert math.isnan(table.loc[("layer", "quant_stub"), "ort:fp32"])  # a layer a cell has no op of
    assert table.loc[("dequantize", "dequantize"), "ort-qdq-int8:int8"] == pytest.approx(6.1)
    assert table.loc[("quantize", "quantize"), "ort-qdq-int8:int8"] == pytest.approx(2.0)
    assert table.loc[("requantize", "requantize"), "torch-fx-int8:int8"] == pytest.approx(0.7)
    assert table.loc[("dequantize", "dequantize"), "ort:fp32"] == 0.0  # profiled, none: zero, not missing
    assert table.loc[("reorder", "reorder"), "torch-eager:fp32"] == pytest.approx(0.3)  # aten::contiguous
    assert table.loc[("unattributed", "unattributed"), "openvino-int8:int8"] == pytest.approx(29.0)
    for (_, model, backend, precision), ops in OPS.items():  # each column: the cell's profiled ops, once
        assert tables[("camvid", model, "cpu", 1, "")][f"{backend}:{precision}"].sum() == pytest.approx(
            sum(ms for *_, ms in ops)
        )


def test_the_overhead_buckets_sum_their_categories_whatever_the_layer(run: Path) -> None:
    profile, _ = run_tables(run)
    buckets = overhead_buckets(profile).set_index(["model", "backend"])
    qdq = buckets.loc[("enet", "ort-qdq-int8")]
    assert qdq["quantize"] == pytest.approx(2.0)
    assert qdq["dequantize"] == pytest.approx(3.0 + 3.1)
    assert qdq["requantize"] == 0.0 and qdq["reorder"] == 0.0
    assert qdq["overhead"] == pytest.approx(8.1)
    assert qdq["unattributed"] == pytest.approx(0.8)
    assert qdq["layers"] == pytest.approx(3.5 + 3.0 + 4.0 + 1.7 + 0.5 + 0.2)
    assert qdq["ops"] == pytest.approx(qdq["overhead"] + qdq["unattributed"] + qdq["layers"])
    fx = buckets.loc[("enet", "torch-fx-int8")]
    assert (fx["quantize"], fx["dequantize"], fx["requantize"]) == pytest.approx((0.3, 0.5, 0.7))
    assert buckets.loc[("enet", "openvino-int8")]["reorder"] == pytest.approx(1.5)


def test_the_not_faster_table_holds_exactly_the_layers_built_to_be_slower(run: Path) -> None:
    profile, results = run_tables(run)
    table = not_faster_layers(profile, results)
    rows = [(r.int8, r.layer, r.float) for r in table.itertuples()]
    assert rows == [  # int8 cells in the run's order; in each, the largest excess first
        ("ort-qdq-int8:int8", "head", "ort:fp32"),  # 1.7 vs 1.5
        ("ort-qdq-int8:int8", "decoder.up1", "ort:fp32"),  # 4.0 vs 3.9
        ("ort-qdq-int8:int8", "enc.bn", "ort:fp32"),  # equal: not lower
        ("torch-fx-int8:int8", "decoder.up1", "torch-eager:fp32"),  # 4.5 vs 3.9
    ]
    up1 = table[(table["int8"] == "ort-qdq-int8:int8") & (table["layer"] == "decoder.up1")].iloc[0]
    assert (up1["int8_ms"], up1["float_ms"], up1["ratio"]) == pytest.approx((4.0, 3.9, 4.0 / 3.9))
    assert table[table["layer"] == "enc.bn"].iloc[0]["ratio"] == pytest.approx(1.0)
    fx = table[table["int8"] == "torch-fx-int8:int8"].iloc[0]
    assert (fx["int8_ms"], fx["float_ms"]) == pytest.approx((4.5, 3.9))  # requantize kept out of the layer
    # unet: ort fp32 has no profile, so nothing is compared; torchao has no counterpart at all
    assert set(table["model"]) == {"enet"}


def test_a_cells_contributors_are_layers_buckets_and_unattributed_op_types_largest_first(run: Path) -> None:
    profile, _ = run_tables(run)
    ops = profile[(profile["model"] == "enet") & (profile["backend"] == "ort-qdq-int8")]
    found = contributors(ops)
    assert list(zip(found["kind"], found["item"])) == [
        ("dequantize", "dequantize"),
        ("layer", "decoder.up1"),
        ("layer", "enc.conv1"),
    ]
    assert list(found["ms_per_run"]) == pytest.approx([6.1, 4.0, 3.5])
    ov = contributors(profile[profile["backend"] == "openvino-int8"])
    assert list(zip(ov["kind"], ov["item"])) == [
        ("unattributed", "Convolution"),
        ("unattributed", "Interpolate"),
        ("quantize", "quantize"),
    ]
    layers = top_layers(ops)
    assert list(layers["layer"]) == ["decoder.up1", "enc.conv1", "enc.conv2", "head", "enc.bn", "quant_stub"]
    assert layers["share_pct"].iloc[0] == pytest.approx(4.0 / 21.8 * 100)
    assert layers["precisions"].iloc[0] == "fp32" and layers["precisions"].iloc[1] == "int8"
