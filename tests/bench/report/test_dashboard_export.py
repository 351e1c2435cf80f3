"""`segbench export --format bmf` and `--format github-action-benchmark`: exact values from a hand-made run
folder, each output checked against its format (Bencher's published JSON schema; github-action-benchmark's
`BenchmarkResult` field list), noisy and failed cells left out and named."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.report.dashboard_export import (
    FIXED_COLUMNS,
    bigger_path,
    drift_columns,
    export_files,
    read_cells,
    to_bmf,
    to_github_action_benchmark,
)
from bench.results.columns import column

CELL = {"suite": "synthetic-nuclei", "model": "unet", "device": "cpu", "batch_size": 1}
NAN = float("nan")
FP32, QDQ, OV = (f"synthetic-nuclei/unet/{b}/cpu/b1" for b in ("ort-fp32", "ort-qdq-int8-int8", "openvino-int8-int8"))
TRT, TORCHAO = "synthetic-nuclei/unet/tensorrt-int8-int8/cpu/b1", "synthetic-nuclei/unet/torchao-int8-int8/cpu/b1"

# https://bencher.dev/bmf.json (draft-07), as bencher.dev/docs/reference/bencher-metric-format publishes it
BMF_SCHEMA = {
    "$id": "https://bencher.dev/bmf.json",
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "patternProperties": {
        ".+": {
            "type": "object",
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "lower_value": {"type": "number"},
                        "upper_value": {"type": "number"},
                    },
                    "required": ["value"],
                }
            },
        }
    },
}
# github-action-benchmark src/extract.ts: interface BenchmarkResult (what extractCustomBenchmarkResult keeps)
GAB_REQUIRED = {"name": str, "unit": str, "value": (int, float)}
GAB_OPTIONAL = {"range": str, "extra": str}
GAB_RANGE = re.compile(r"(\+-|±)\s*\d")  # src/extractRangeInfo.ts: such a range is rescaled with the unit


def _row(backend: str, precision: str, status: str = "ok", **values: object) -> dict[str, object]:
    return {**CELL, "backend": backend, "precision": precision, "status": status, **values}


def _run_folder(folder: Path) -> Path:
    folder.mkdir()
    rows = [
        _row(
            "ort",
            "fp32",
            timing_quality="ok",
            latency_p50_ms=4.0,
            latency_p99_ms=5.0,
            speedup_vs_fp32=1.0,
            model_size_bytes=7_000_000,
            backend_rss_mib=120.0,
            miou=0.72,
            miou_drift=0.0,
            dice_drift=0.0,
            gradcam_pearson=NAN,
        ),
        _row(  # timed on a busy machine: its latency and speedup are no evidence
            "ort-qdq-int8",
            "int8",
            timing_quality="noisy: reference kernel x1.4",
            latency_p50_ms=3.0,
            latency_p99_ms=3.5,
            speedup_vs_fp32=1.3,
            speedup_vs_fp32_ci_low=1.2,
            speedup_vs_fp32_ci_high=1.4,
            model_size_bytes=2_000_000,
            backend_rss_mib=80.0,
            miou=0.71,
            miou_drift=-0.01,
            miou_drift_ci_low=-0.02,
            miou_drift_ci_high=0.0,
            dice_drift=-0.005,
            min_class_iou_drift=-0.04,
            min_class_iou_drift_ci_low=-0.06,
            min_class_iou_drift_ci_high=-0.02,
            iou_nucleus_drift=-0.03,  # a per-class family: not exported
            pixel_agreement=0.98,  # agreement, not a drift
        ),
        _row(
            "openvino-int8",
            "int8",
            timing_quality="ok",
            latency_p50_ms=2.0,
            latency_p99_ms=2.5,
            speedup_vs_fp32=2.0,
            speedup_vs_fp32_ci_low=1.9,
            speedup_vs_fp32_ci_high=2.1,
            model_size_bytes=2_100_000,
            backend_rss_mib=NAN,  # not measured: left out, never NaN in a file
            miou_drift=-0.02,
            miou_drift_ci_low=-0.03,
            miou_drift_ci_high=-0.01,
        ),
        _row("tensorrt-int8", "int8", "unavailable: tensorrt is not importable"),
        _row("torchao-int8", "int8", "error: compile failed", latency_p50_ms=9.0),
    ]
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    return folder


LEFT_OUT = [
    f"{QDQ}: latency_p50_ms, latency_p99_ms, speedup_vs_fp32 (timing noisy: reference kernel x1.4)",
    f"{TRT}: unavailable: tensorrt is not importable",
    f"{TORCHAO}: error: compile failed",
]


def _check_bmf_fields(document: object) -> None:
    """The schema's rules by hand (runs where jsonschema is not installed), plus: no NaN, measure <= 64."""
    assert isinstance(document, dict) and document
    for benchmark, measures in document.items():
        assert isinstance(benchmark, str) and benchmark and isinstance(measures, dict) and measures
        for measure, metric in measures.items():
            assert isinstance(measure, str) and 0 < len(measure) <= 64 and isinstance(metric, dict)
            assert "value" in metric and set(metric) <= {"value", "lower_value", "upper_value"}, metric
            for number in metric.values():
                assert isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)


def _check_gab_fields(results: object) -> None:
    """github-action-benchmark's BenchmarkResult: name, unit, value required; range, extra optional strings."""
    assert isinstance(results, list) and results
    for item in results:
        assert isinstance(item, dict) and set(GAB_REQUIRED) <= set(item) <= set(GAB_REQUIRED) | set(GAB_OPTIONAL)
        for field, kind in {**GAB_REQUIRED, **GAB_OPTIONAL}.items():
            assert field not in item or isinstance(item[field], kind), (field, item)
        assert not isinstance(item["value"], bool) and math.isfinite(item["value"]) and item["name"]
        assert "range" not in item or not GAB_RANGE.search(item["range"])  # shown as written, never rescaled
    names = [item["name"] for item in results]
    assert len(names) == len(set(names))  # the action matches entries of two runs by name


def test_drift_columns_come_from_the_declarations():
    names = ["miou", "miou_drift", "iou_nucleus_drift", "min_class_iou_drift", "pixel_agreement", "miou_drift_ci_low"]
    assert drift_columns([*names, "mean_bf_score_drift", "undeclared_drift"]) == [
        "miou_drift",
        "min_class_iou_drift",
        "mean_bf_score_drift",
    ]
    # what a noisy row loses is what columns.py calls timing: latency and speed, not size or memory
    assert [name for name in FIXED_COLUMNS if column(name).timing] == [
        "latency_p50_ms",
        "latency_p99_ms",
        "speedup_vs_fp32",
    ]


def test_bmf_exact_values_intervals_and_left_out(tmp_path):
    cells, left_out = read_cells(_run_folder(tmp_path / "run"))
    assert left_out == LEFT_OUT
    document = to_bmf(cells)
    assert list(document) == [FP32, QDQ, OV]
    assert document[QDQ] == {  # noisy: size, memory and drifts only
        "model-size-bytes": {"value": 2_000_000},
        "backend-rss-mib": {"value": 80.0},
        "miou-drift": {"value": -0.01, "lower_value": -0.02, "upper_value": 0.0},
        "dice-drift": {"value": -0.005},
        "min-class-iou-drift": {"value": -0.04, "lower_value": -0.06, "upper_value": -0.02},
    }
    assert document[OV] == {
        "latency-p50-ms": {"value": 2.0},
        "latency-p99-ms": {"value": 2.5},
        "speedup-vs-fp32": {"value": 2.0, "lower_value": 1.9, "upper_value": 2.1},
        "model-size-bytes": {"value": 2_100_000},
        "miou-drift": {"value": -0.02, "lower_value": -0.03, "upper_value": -0.01},
    }
    assert document[FP32]["latency-p50-ms"] == {"value": 4.0} and "gradcam-pearson" not in document[FP32]
    _check_bmf_fields(json.loads(json.dumps(document, allow_nan=False)))


def test_bmf_validates_against_bencher_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    document = to_bmf(read_cells(_run_folder(tmp_path / "run"))[0])
    jsonschema.Draft7Validator.check_schema(BMF_SCHEMA)
    jsonschema.validate(json.loads(json.dumps(document)), BMF_SCHEMA)
    bad = {FP32: {"latency-p50-ms": {"lower_value": 1.0}}}  # the schema does catch a metric without value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, BMF_SCHEMA)


def test_github_action_benchmark_one_list_per_direction(tmp_path):
    cells, _ = read_cells(_run_folder(tmp_path / "run"))
    lists = to_github_action_benchmark(cells)
    smaller, bigger = {e["name"]: e for e in lists["lower"]}, {e["name"]: e for e in lists["higher"]}
    assert list(smaller) == [
        *(f"{FP32}/{c}" for c in ("latency_p50_ms", "latency_p99_ms", "model_size_bytes", "backend_rss_mib")),
        f"{QDQ}/model_size_bytes",
        f"{QDQ}/backend_rss_mib",
        *(f"{OV}/{c}" for c in ("latency_p50_ms", "latency_p99_ms", "model_size_bytes")),
    ]
    assert list(bigger) == [
        *(f"{FP32}/{c}" for c in ("speedup_vs_fp32", "miou_drift", "dice_drift")),
        *(f"{QDQ}/{c}" for c in ("miou_drift", "dice_drift", "min_class_iou_drift")),
        f"{OV}/speedup_vs_fp32",
        f"{OV}/miou_drift",
    ]
    assert smaller[f"{OV}/latency_p50_ms"] == {
        "name": f"{OV}/latency_p50_ms",
        "unit": "ms",
        "value": 2.0,
        "extra": "latency_p50_ms: 2\ntiming_quality: ok",
    }
    assert smaller[f"{QDQ}/model_size_bytes"]["unit"] == "bytes" and smaller[f"{FP32}/backend_rss_mib"]["unit"] == "MiB"
    assert bigger[f"{OV}/speedup_vs_fp32"] == {
        "name": f"{OV}/speedup_vs_fp32",
        "unit": "x",
        "value": 2.0,
        "range": "95% interval [1.9, 2.1]",
        "extra": "speedup_vs_fp32: 2\ntiming_quality: ok",
    }
    drift = bigger[f"{OV}/miou_drift"]
    assert drift["unit"] == "1 + drift" and drift["value"] == pytest.approx(0.98)
    assert drift["range"] == "95% interval [0.97, 0.99]"
    assert drift["extra"] == "miou_drift: -0.02 (95% interval [-0.03, -0.01])"
    assert "range" not in bigger[f"{QDQ}/dice_drift"]  # no interval columns for it
    for results in lists.values():
        _check_gab_fields(json.loads(json.dumps(results, allow_nan=False)))


def test_the_actions_ratio_reads_a_worse_drift_as_worse(tmp_path):
    """src/write.ts findAlerts, bigger-is-better: ratio previous / current; above the threshold it alerts.
    A drift as it is would read a loss growing from 0.01 to 0.05 as 0.2 (better), and the way back as 5."""

    def value(drift: float) -> float:
        folder = tmp_path / f"run{drift}"
        folder.mkdir(exist_ok=True)
        row = _row("ort-qdq-int8", "int8", timing_quality="ok", miou_drift=drift)
        pd.DataFrame([row]).to_parquet(folder / "results.parquet")
        (entry,) = to_github_action_benchmark(read_cells(folder)[0])["higher"]
        return float(entry["value"])

    assert value(-0.01) / value(-0.05) > 1.04  # worse: alerts at a 104% threshold
    assert value(-0.05) / value(-0.01) < 1  # better: never alerts


def test_cli_writes_both_github_action_benchmark_files_and_names_what_it_left_out(tmp_path, capsys):
    run, out = _run_folder(tmp_path / "run"), tmp_path / "gab.json"
    assert main(["export", str(run), "--format", "github-action-benchmark", "--out", str(out)]) == 0
    assert bigger_path(out) == tmp_path / "gab.bigger.json" and bigger_path(out).is_file()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{out}: 9 result(s), smaller is better (tool: customSmallerIsBetter)"
    assert printed[1] == f"{tmp_path / 'gab.bigger.json'}: 8 result(s), bigger is better (tool: customBiggerIsBetter)"
    assert printed[2:] == [f"left out: {line}" for line in LEFT_OUT]
    files, _ = export_files(run, "github-action-benchmark", out)
    assert [json.loads(path.read_text()) for path, _, _ in files] == [document for _, document, _ in files]


def test_cli_writes_bmf(tmp_path, capsys):
    run, out = _run_folder(tmp_path / "run"), tmp_path / "bmf.json"
    assert main(["export", str(run), "--format", "bmf", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{out}: 3 benchmark(s), 17 metric(s) in Bencher Metric Format"
    _check_bmf_fields(json.loads(out.read_text()))
    assert json.loads(out.read_text()) == export_files(run, "bmf", out)[0][0][1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bmf.json", "run"]


@pytest.mark.parametrize("export_format", ["bmf", "github-action-benchmark"])
def test_a_folder_that_is_not_a_run_is_one_line_exit_2_and_nothing_written(export_format, tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", export_format, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.parquet" in err[0]
    assert list(tmp_path.iterdir()) == []
