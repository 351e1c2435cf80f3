"""The profile report (`segbench run --profile`): layers across backends, overhead buckets, each int8
cell against its float counterpart, in report.md and report.html, from hand-written profile.parquet and
results.parquet tables (no benchmark runs here)."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.backend.profiling import op_category
from bench.report.files import write_reports
from bench.report.html import write_html
from bench.report.profiles import (
    Cell,
    attribution_tables,
    contributors,
    counterparts,
    figure_path,
    html_sections,
    markdown_section,
    not_faster_layers,
    not_faster_lines,
    op_type_chart,
    overhead_buckets,
    read_profile,
    top_layers,
)
from bench.results.counterparts import float_counterpart
from tests.bench.report.test_html import CHROMIUM, _chromium

CALLS = 10  # profiled calls per cell: us_per_run = total_us / CALLS
IDENTITY = {"device": "cpu", "batch_size": 1}

# (layer, op_type, op_precision, ms per run); category from the op type, as the runtimes' profilers do.
# camvid / enet: ort-qdq-int8 (33.2 ms) is not faster than ort fp32 (32.8 ms); its decoder.up1, head and
# enc.bn are not lower than ort fp32's; its dequantize ops (one attributed to decoder.up1, one to no layer)
# are the largest item. torch-fx-int8 (20 ms) beats torch-eager fp32 (40 ms), but its decoder.up1 does
# not. openvino-int8 (45 ms; no openvino fp32 in the run) is judged against torch-eager fp32, and its
# largest items are compute ops without a layer.
OPS: dict[tuple[str, str, str, str], list[tuple[str, str, str, float]]] = {
    ("camvid", "enet", "torch-eager", "fp32"): [
        ("enc.conv1", "aten::conv2d", "fp32", 10.0),
        ("enc.conv2", "aten::conv2d", "fp32", 8.0),
        ("decoder.up1", "aten::max_unpool2d", "fp32", 3.9),
        ("head", "aten::conv2d", "fp32", 2.0),
        ("enc.bn", "aten::batch_norm", "fp32", 0.6),
        ("", "aten::upsample_bilinear2d", "fp32", 1.0),
        ("", "aten::contiguous", "fp32", 0.3),
    ],
    ("camvid", "enet", "ort", "fp32"): [
        ("enc.conv1", "Conv", "fp32", 9.0),
        ("enc.conv2", "Conv", "fp32", 7.0),
        ("decoder.up1", "MaxUnpool", "fp32", 3.9),
        ("head", "Conv", "fp32", 1.5),
        ("enc.bn", "BatchNormalization", "fp32", 0.5),
        ("", "Resize", "fp32", 0.8),
    ],
    ("camvid", "enet", "ort-qdq-int8", "int8"): [
        ("enc.conv1", "QLinearConv", "int8", 3.5),
        ("enc.conv2", "QLinearConv", "int8", 3.0),
        ("decoder.up1", "MaxUnpool", "fp32", 4.0),
        ("head", "QLinearConv", "int8", 1.7),
        ("enc.bn", "BatchNormalization", "fp32", 0.5),  # equal: not lower, so listed
        ("quant_stub", "Identity", "fp32", 0.2),  # only on this side: not compared
        ("", "Resize", "fp32", 0.8),
        ("enc.conv1", "QuantizeLinear", "", 2.0),  # overhead counts in its bucket, not in enc.conv1
        ("decoder.up1", "DequantizeLinear", "", 3.0),
        ("", "DequantizeLinear", "", 3.1),
    ],
    ("camvid", "enet", "torch-fx-int8", "int8"): [
        ("enc.conv1", "quantized::conv2d", "int8", 2.5),
        ("enc.conv2", "quantized::conv2d", "int8", 2.0),
        ("decoder.up1", "aten::max_unpool2d", "fp32", 4.5),
        ("head", "quantized::conv2d", "int8", 0.9),
        ("", "aten::quantize_per_tensor", "", 0.3),
        ("", "aten::dequantize", "", 0.5),
        ("decoder.up1", "quantized::requantize", "int8", 0.7),
    ],
    ("camvid", "enet", "openvino-int8", "int8"): [
        ("", "Convolution", "int8", 20.0),
        ("", "Interpolate", "fp32", 9.0),
        ("enc.conv1", "FakeQuantize", "int8", 5.0),
        ("enc.conv1", "Convolution", "int8", 3.0),
        ("", "Reorder", "", 1.5),
    ],
    # camvid / unet: ort fp32 ran but its profiler failed; torchao-pt2e-int8 has no float cell at all.
    ("camvid", "unet", "ort-qdq-int8", "int8"): [
        ("down1", "QLinearConv", "int8", 5.0),
        ("up1", "Resize", "fp32", 4.0),
        ("", "DequantizeLinear", "", 2.5),
    ],
    ("camvid", "unet", "torchao-pt2e-int8", "int8"): [
        ("down1", "quantized_decomposed::conv", "int8", 2.0),
    ],
}
P50 = {
    ("camvid", "enet", "torch-eager", "fp32"): 40.0,
    ("camvid", "enet", "ort", "fp32"): 32.8,
    ("camvid", "enet", "ort-qdq-int8", "int8"): 33.2,
    ("camvid", "enet", "torch-fx-int8", "int8"): 20.0,
    ("camvid", "enet", "openvino-int8", "int8"): 45.0,
    ("camvid", "unet", "ort", "fp32"): 10.0,
    ("camvid", "unet", "ort-qdq-int8", "int8"): 12.0,
    ("camvid", "unet", "torchao-pt2e-int8", "int8"): 4.0,
}
ENET = ("camvid", "enet", "cpu", 1)


def _cell(key: tuple[str, str, str, str]) -> Cell:
    return Cell(*key, "cpu", 1)


def _profile_rows() -> list[dict]:
    rows = []
    for key, ops in OPS.items():
        for i, (layer, op_type, precision, ms) in enumerate(ops):
            total_us = ms * 1e3 * CALLS
            rows.append(
                {
                    **dict(zip(("suite", "model", "backend", "precision"), key)),
                    **IDENTITY,
                    "threads": 2,
                    "name": f"{op_type}_{i}",
                    "op_type": op_type,
                    "layer": layer,
                    "op_precision": precision,
                    "category": op_category(op_type),
                    "calls": 2 * CALLS,
                    "total_us": total_us,
                    "mean_us": total_us / (2 * CALLS),
                    "us_per_run": total_us / CALLS,
                    "profiler": "test profiler",
                    "attribution": "by hand",
                }
            )
    return rows


def _results_rows() -> list[dict]:
    rows = []
    for key, p50 in P50.items():
        profiled = key in OPS
        ops_ms = sum(ms for *_, ms in OPS.get(key, []))
        rows.append(
            {
                **dict(zip(("suite", "model", "backend", "precision"), key)),
                **IDENTITY,
                "status": "ok",
                "latency_p50_ms": p50,
                "speedup_vs_fp32": None,
                "profile_status": "ok" if profiled else "error: the profiler reported no operator",
                "profile_method": "test profiler" if profiled else None,
                "profile_ms_per_run": ops_ms * 1.25 if profiled else None,
                "profile_ops_ms_per_run": ops_ms if profiled else None,
                "profile_overhead_pct": (ops_ms * 1.25 / p50 - 1) * 100 if profiled else None,
                "profile_ops_vs_p50_pct": ops_ms / p50 * 100 if profiled else None,
                "profile_layer_attributed_pct": 80.0 if profiled else None,
                "profile_qdq_reorder_pct": 10.0 if profiled else None,
            }
        )
    rows.append(
        {
            "suite": "camvid",
            "model": "enet",
            "backend": "tensorrt-int8",
            "precision": "int8",
            **IDENTITY,
            "status": "unavailable: tensorrt is not importable",
        }
    )
    return rows


def make_run(root: Path, profiled: bool = True) -> Path:
    run = root / "20260101-120000"
    run.mkdir(parents=True)
    pd.DataFrame(_results_rows()).to_parquet(run / "results.parquet", index=False)
    (run / "env.json").write_text(json.dumps({"cpu_model": "Test CPU", "threads": 2, "libraries": {}}))
    if profiled:
        pd.DataFrame(_profile_rows()).to_parquet(run / "profile.parquet", index=False)
    return run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def _tables(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    profile = read_profile(run)
    assert profile is not None
    return profile, pd.read_parquet(run / "results.parquet")


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
    eager = _cell(("camvid", "enet", "torch-eager", "fp32"))
    assert pairs[_cell(("camvid", "enet", "ort-qdq-int8", "int8"))] == _cell(("camvid", "enet", "ort", "fp32"))
    assert pairs[_cell(("camvid", "enet", "torch-fx-int8", "int8"))] == eager
    assert pairs[_cell(("camvid", "enet", "openvino-int8", "int8"))] == eager  # no openvino fp32 in the run
    assert pairs[_cell(("camvid", "enet", "tensorrt-int8", "int8"))] == eager  # no tensorrt-fp16 either
    assert pairs[_cell(("camvid", "unet", "ort-qdq-int8", "int8"))] == _cell(("camvid", "unet", "ort", "fp32"))
    assert pairs[_cell(("camvid", "unet", "torchao-pt2e-int8", "int8"))] is None  # unet has no torch-eager
    assert _cell(("camvid", "enet", "ort", "fp32")) not in pairs


def test_the_attribution_table_puts_every_layer_under_every_backend_and_sums_to_the_ops(run: Path) -> None:
    profile, results = _tables(run)
    tables = attribution_tables(profile, results)
    assert set(tables) == {ENET, ("camvid", "unet", "cpu", 1)}
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
        assert tables[("camvid", model, "cpu", 1)][f"{backend}:{precision}"].sum() == pytest.approx(
            sum(ms for *_, ms in ops)
        )


def test_the_overhead_buckets_sum_their_categories_whatever_the_layer(run: Path) -> None:
    profile, _ = _tables(run)
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
    profile, results = _tables(run)
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
    profile, _ = _tables(run)
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


def test_the_markdown_lines_name_the_three_contributors_in_order(run: Path) -> None:
    profile, results = _tables(run)
    lines = not_faster_lines(profile, results)
    assert lines == [
        "camvid / enet / ort-qdq-int8 int8 33.2 ms is not faster than ort fp32 32.8 ms: largest contributors "
        "dequantize ops 6.1 ms/run (fp32: —), layer decoder.up1 (MaxUnpool, fp32) 4.0 ms/run (fp32: 3.9), "
        "layer enc.conv1 (QLinearConv, int8) 3.5 ms/run (fp32: 9.0)",
        "camvid / enet / openvino-int8 int8 45.0 ms is not faster than torch-eager fp32 40.0 ms: largest "
        "contributors unattributed Convolution ops (int8) 20.0 ms/run (fp32: —), unattributed Interpolate ops "
        "(fp32) 9.0 ms/run (fp32: —), quantize ops 5.0 ms/run (fp32: —)",
        "camvid / unet / ort-qdq-int8 int8 12.0 ms is not faster than ort fp32 10.0 ms: largest contributors "
        "layer down1 (QLinearConv, int8) 5.0 ms/run, layer up1 (Resize, fp32) 4.0 ms/run, dequantize ops "
        "2.5 ms/run (ort fp32 has no profile)",
        "camvid / unet / torchao-pt2e-int8 int8: no float counterpart ran in this group, nothing to compare",
    ]
    section = markdown_section(run, results)
    assert section[0] == "## Profiles" and "`profile.parquet` in this run folder" in section[2]
    assert [line for line in section if line.startswith("- ")] == [f"- {line}" for line in lines]


def test_an_int8_cell_slower_than_its_counterpart_without_a_profile_says_so(run: Path) -> None:
    profile, results = _tables(run)
    profile = profile[profile["backend"] != "ort-qdq-int8"]
    lines = not_faster_lines(profile, results)
    assert lines[0] == "camvid / enet / ort-qdq-int8 int8 33.2 ms is not faster than ort fp32 32.8 ms: no profile (ok)"
    assert not_faster_layers(profile, results)["int8"].tolist() == ["torch-fx-int8:int8"]


def test_a_run_whose_every_profile_failed_still_says_why(run: Path) -> None:
    pd.DataFrame([]).to_parquet(run / "profile.parquet")  # no records: no columns either
    failed = "error: the profiler reported no operator"
    results = pd.read_parquet(run / "results.parquet").assign(profile_status=failed)
    profile = read_profile(run)
    assert profile is not None and profile.empty
    assert not_faster_lines(profile, results)[0] == (
        f"camvid / enet / ort-qdq-int8 int8 33.2 ms is not faster than ort fp32 32.8 ms: no profile ({failed})"
    )
    assert attribution_tables(profile, results) == {} and not_faster_layers(profile, results).empty
    ((_, body),) = html_sections(run, results)
    assert "<img" not in body and "profile-honesty" not in body
    assert body.count(f"</b>: {failed}</li>") == len(P50)  # every cell that ran, none profiled


def test_the_op_type_bar_keeps_eight_op_types_and_the_rest_as_other() -> None:
    ops = pd.DataFrame(
        {
            "op_type": [f"Op{i}" for i in range(11)] + ["DequantizeLinear"],
            "category": ["compute"] * 11 + ["dequantize"],
            "ms_per_run": [float(20 - i) for i in range(11)] + [15.5],
        }
    )
    fig = op_type_chart(ops, "cell", p50_ms=200.0)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 9
    widths = [b.get_width() for b in bars]
    assert widths[:3] == [20.0, 19.0, 18.0] and widths[5] == 15.5  # sorted by time, DequantizeLinear among them
    assert bars[5].get_hatch() == "//" and bars[0].get_hatch() is None
    assert widths[-1] == pytest.approx(sum(range(10, 14)))  # Op7..Op10: four op types in "other"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-2].startswith("other (4 op types)") and labels[-1].startswith("p50 unprofiled")
    assert sum(widths) == pytest.approx(ops["ms_per_run"].sum())


def test_the_html_section_has_figures_tables_and_the_honesty_numbers(run: Path) -> None:
    results = pd.read_parquet(run / "results.parquet")
    ((title, body),) = html_sections(run, results)
    assert title.startswith("Profiles")
    figures = sorted((run / "figures").glob("profile_*.png"))
    assert len(figures) == len(OPS)
    assert figure_path(run, _cell(("camvid", "enet", "ort-qdq-int8", "int8"))) in figures
    assert body.count('<img class="figure" src="data:image/png;base64,') == len(OPS)
    assert body.count("<details>") == len(OPS) + 2  # a cell each, and every layer of each model
    honesty = re.search(r'<table id="profile-honesty">.*?</table>', body, re.S).group(0)
    assert honesty.count("<tr>") == 1 + len(OPS)
    qdq = re.search(r"<tr><td>camvid / enet / ort-qdq-int8 int8 \(cpu, batch 1\)</td>(.*?)</tr>", honesty).group(1)
    numbers = re.findall(r'<td class="num">([^<]*)</td>', qdq)
    assert numbers[:3] == ["33.200", f"{21.8 * 1.25:.3f}", f"{(21.8 * 1.25 / 33.2 - 1) * 100:+.1f}"]
    assert numbers[3:5] == [f"{21.8:.3f}", f"{21.8 / 33.2 * 100:.1f}"]
    assert "camvid / unet / ort fp32</b>: error: the profiler reported no operator" in body
    enet = body[body.index("<h3>camvid / enet") : body.index("<h3>camvid / unet")]
    slower = re.search(r"not lower than their float counterpart's:</p>(.*?)</table>", enet, re.S).group(1)
    assert re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", slower) == [
        ("head", "ort-qdq-int8:int8"),
        ("decoder.up1", "ort-qdq-int8:int8"),
        ("enc.bn", "ort-qdq-int8:int8"),
        ("decoder.up1", "torch-fx-int8:int8"),
    ]
    assert '<td>dequantize ops</td><td class="num">0.000</td><td class="num">0.500</td>' in enet
    assert "<td>total profiled ops</td>" in enet
    unet = body[body.index("<h3>camvid / unet") :]  # ort fp32 has no profile, torchao no counterpart
    assert "None compared: no int8 cell here has a profiled float counterpart." in unet


def test_the_reports_of_a_profiled_run_only_add_the_profile_section(tmp_path: Path) -> None:
    plain, profiled = make_run(tmp_path / "plain", profiled=False), make_run(tmp_path / "profiled")
    results = pd.read_parquet(plain / "results.parquet")
    assert (
        read_profile(plain) is None and html_sections(plain, results) == [] and markdown_section(plain, results) == []
    )
    written = write_reports(plain)
    assert [p.name for p in written] == ["decision.json", "report.md", "report.html"] and not (
        plain / "figures"
    ).exists()
    md, page = (plain / "report.md").read_text(), (plain / "report.html").read_text()
    assert "Profiles" not in md and "Profiles" not in page
    written = write_reports(profiled)
    assert sorted(p for p in written if p.name.startswith("profile_")) == sorted(
        figure_path(profiled, _cell(key)) for key in OPS
    )
    md_p, page_p = (profiled / "report.md").read_text(), (profiled / "report.html").read_text()
    section = md_p[md_p.index("## Profiles") : md_p.index("## Environment")]
    # the decision names where a flagged int8 cell's time goes, from the profile; else byte for byte the same
    decided = md_p[md_p.index("## Decision") : md_p.index("## Summary")]
    assert "where its time goes: " in decided and "no profile to say where its time goes" not in decided
    plain_decided = md[md.index("## Decision") : md.index("## Summary")]
    assert "no profile to say where its time goes" in plain_decided
    assert md_p.replace(section, "").replace(decided, "") == md.replace(plain_decided, "")
    html_section = page_p[page_p.index("<h2>Profiles") : page_p.index("<h2>Cells without results")]
    html_decided = page_p[page_p.index("<h2>Decision") : page_p.index("<h2>Summary")]
    plain_html_decided = page[page.index("<h2>Decision") : page.index("<h2>Summary")]
    assert page_p.replace(html_section, "").replace(html_decided, "") == page.replace(plain_html_decided, "")


# Read back from the DOM: the summary still fits the window, the page itself never scrolls sideways (the
# profile's wide tables scroll in their own wrappers), and every embedded figure decodes.
PROFILE_PROBE = """<script>window.addEventListener('load', () => {
  const wrap = document.getElementById('summary').parentElement;
  document.body.dataset.layout = JSON.stringify({
    window: window.innerWidth, summaryScroll: wrap.scrollWidth, summaryClient: wrap.clientWidth,
    pageScroll: document.documentElement.scrollWidth, images: document.images.length,
    decoded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
  });
});</script>"""


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); CI installs it")
def test_a_profiled_report_still_fits_a_1400px_window_in_headless_chromium(run: Path) -> None:
    report = write_html(run)
    probe = report.with_name("probe.html")
    text = report.read_text()
    probe.write_text(re.sub(r"<details>", "<details open>", text).replace("</body>", PROFILE_PROBE + "</body>"))
    dom = _chromium("--window-size=1400,1000", "--dump-dom", probe.as_uri(), profile=run.parent / "chrome").stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
    assert layout["window"] == 1400
    assert layout["summaryScroll"] <= layout["summaryClient"], f"the summary scrolls sideways: {layout}"
    assert layout["pageScroll"] <= 1400, f"the page scrolls sideways: {layout}"
    assert layout["images"] == layout["decoded"] == 1 + len(OPS)  # the latency chart, and one bar per cell
