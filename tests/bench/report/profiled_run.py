"""A profiled run folder written by hand (profile.parquet and results.parquet; no benchmark runs), for the
profile tests: its layers, overhead buckets and int8 cells are built to be found slower or faster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.backend.profiling import op_category
from bench.report.profile_analysis import Cell, read_profile

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
ENET = ("camvid", "enet", "cpu", 1, "")


def cell(key: tuple[str, str, str, str]) -> Cell:
    """The cell of an `OPS` / `P50` key (cpu, batch 1)."""
    return Cell(*key, "cpu", 1)


def profile_rows() -> list[dict]:
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


def results_rows() -> list[dict]:
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
    pd.DataFrame(results_rows()).to_parquet(run / "results.parquet", index=False)
    (run / "env.json").write_text(json.dumps({"cpu_model": "Test CPU", "threads": 2, "libraries": {}}))
    if profiled:
        pd.DataFrame(profile_rows()).to_parquet(run / "profile.parquet", index=False)
    return run


def run_tables(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's profile (`read_profile`) and results."""
    profile = read_profile(run)
    assert profile is not None
    return profile, pd.read_parquet(run / "results.parquet")
