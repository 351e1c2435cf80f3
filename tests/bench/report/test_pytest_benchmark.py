"""`segbench export --format pytest-benchmark`: a run folder as pytest-benchmark's JSON, read back by
pytest-benchmark's own `compare` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pytest_benchmark")

from bench.cli import main  # noqa: E402
from bench.report.pytest_benchmark import export_pytest_benchmark  # noqa: E402

CELL = {"suite": "synthetic-nuclei", "model": "unet", "device": "cpu", "batch_size": 1}


def _run_folder(folder: Path) -> Path:
    folder.mkdir()
    rows = [
        {
            **CELL,
            "backend": "ort",
            "precision": "fp32",
            "status": "ok",
            "latency_p50_ms": 4.0,
            "dice": 0.98,
            "dice_drift": 0.0,
            "timing_quality": "ok",
            "timer": "perf_counter_ns",
            "model_size_bytes": 7_000_000,
            "gradcam_pearson": float("nan"),
        },
        {
            **CELL,
            "backend": "ort-qdq-int8",
            "precision": "int8",
            "status": "ok",
            "latency_p50_ms": 3.0,
            "dice": 0.97,
            "dice_drift": -0.01,
            "timing_quality": "noisy: reference kernel x1.4",
            "timer": "perf_counter_ns",
            "model_size_bytes": 2_000_000,
            "gradcam_pearson": 0.99,
        },
        {**CELL, "backend": "tensorrt-int8", "precision": "int8", "status": "unavailable: tensorrt is not importable"},
    ]
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    rng = np.random.default_rng(0)
    samples = [
        {**CELL, "backend": b, "precision": p, "iteration": i, "round": 0, "latency_ns": int(ns)}
        for b, p, mean in (("ort", "fp32", 4e6), ("ort-qdq-int8", "int8", 3e6))
        for i, ns in enumerate(rng.normal(mean, mean / 50, 40))
    ]
    pd.DataFrame(samples).to_parquet(folder / "samples.parquet")
    env = {
        "hostname": "vm",
        "cpu_model": "Test CPU",
        "os": "Linux-6.1-x86_64-with-glibc2.36",
        "python": "3.11.7",
        "logical_cores": 2,
        "physical_cores": 2,
        "threads": 2,
        "cpu_flags": ["avx2"],
        "libraries": {"torch": "2"},
        "git_commit": "abc123",
        "git_branch": "main",
        "git_dirty": False,
        "date": "2026-12-04T10:00:00+00:00",
    }
    (folder / "env.json").write_text(json.dumps(env))
    return folder


def test_one_benchmark_per_timed_cell_with_its_raw_samples(tmp_path):
    document, left_out = export_pytest_benchmark(_run_folder(tmp_path / "run"))
    names = [b["name"] for b in document["benchmarks"]]
    assert names == ["synthetic-nuclei/unet/ort-fp32/cpu/b1", "synthetic-nuclei/unet/ort-qdq-int8-int8/cpu/b1"]
    assert left_out == ["synthetic-nuclei/unet/tensorrt-int8-int8/cpu/b1: unavailable: tensorrt is not importable"]
    ort = document["benchmarks"][0]
    assert len(ort["stats"]["data"]) == 40 and ort["stats"]["rounds"] == 40
    assert ort["stats"]["median"] == pytest.approx(np.median(ort["stats"]["data"]))  # seconds, pytest-benchmark's unit
    assert 3.5e-3 < ort["stats"]["median"] < 4.5e-3
    assert ort["extra_info"]["dice"] == 0.98 and "gradcam_pearson" not in ort["extra_info"]  # NaN is left out
    assert document["benchmarks"][1]["extra_info"]["timing_quality"].startswith("noisy")
    assert document["commit_info"]["branch"] == "main"  # env.json's git_branch
    assert document["commit_info"]["id"] == "abc123" and document["machine_info"]["cpu"]["brand_raw"] == "Test CPU"


@pytest.mark.integration  # starts a process
def test_pytest_benchmarks_own_compare_reads_it(tmp_path, capsys):
    out = tmp_path / "0001_bench.json"
    assert main(["export", str(_run_folder(tmp_path / "run")), "--format", "pytest-benchmark", "--out", str(out)]) == 0
    assert "2 benchmark(s)" in capsys.readouterr().out
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(out), "--columns", "min,median,rounds"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "ort-qdq-int8-int8" in shown.stdout and "Median" in shown.stdout


def test_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "pytest-benchmark", "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no results.parquet" in err[0]
    assert not (tmp_path / "b.json").exists()
