"""The profiles' findings in words: the int8 cells not faster than their float counterpart, each with its
largest contributors, and a flagged cell's time sinks for the decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.profile_analysis import not_faster_layers
from bench.report.profile_text import not_faster_lines, time_sinks_text
from tests.bench.report.profiled_run import make_run, run_tables


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def test_the_not_faster_lines_name_the_three_contributors_in_order(run: Path) -> None:
    profile, results = run_tables(run)
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


def test_a_flagged_cells_time_sinks_are_its_three_contributors_in_words(run: Path) -> None:
    profile, _ = run_tables(run)
    ops = profile[(profile["model"] == "enet") & (profile["backend"] == "ort-qdq-int8")]
    assert time_sinks_text(ops) == (
        "dequantize ops 6.1 ms/run, layer decoder.up1 (MaxUnpool, fp32) 4.0 ms/run, "
        "layer enc.conv1 (QLinearConv, int8) 3.5 ms/run"
    )


def test_an_int8_cell_slower_than_its_counterpart_without_a_profile_says_so(run: Path) -> None:
    profile, results = run_tables(run)
    profile = profile[profile["backend"] != "ort-qdq-int8"]
    lines = not_faster_lines(profile, results)
    assert lines[0] == "camvid / enet / ort-qdq-int8 int8 33.2 ms is not faster than ort fp32 32.8 ms: no profile (ok)"
    assert not_faster_layers(profile, results)["int8"].tolist() == ["torch-fx-int8:int8"]


def test_a_cell_of_a_run_without_profiles_says_not_profiled_not_nan(run: Path) -> None:
    profile, results = run_tables(run)
    profile = profile[profile["backend"] != "ort-qdq-int8"]
    results = results.assign(profile_status=float("nan"))  # a run without --profile leaves the column empty
    lines = not_faster_lines(profile, results)
    assert lines[0].endswith("ort fp32 32.8 ms: no profile (not profiled)")
