"""`segbench run --input-sizes ... --batch-sizes ...` for real: a user's tiny network on torch eager and
ONNX Runtime at the suite's own size (synthetic-nuclei, 128x128) and at 64x64, batches 1 and 2.
Every shape is a group of its own with its own fp32 reference; quality is measured at the suite's size
only and the other rows say so; the decision is made there; the report has the sweep's section and
figure; the run's config.toml and run.json keep the sweep; a resume recomputes nothing."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.bench.models.byo_fixture import TinyNet
from tests.helpers import segbench_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_a_sweep_times_every_shape_and_measures_quality_at_the_suites_size(session_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEGBENCH_CACHE": str(session_cache)}
    args = ["run", "--models", "tests.bench.models.byo_fixture:tiny_net", "--weights", str(tmp_path / "weights.pt")]
    args += ["--backends", "torch-eager,ort", "--no-gradcam", "--input-sizes", "64x64,128x128"]
    args += ["--batch-sizes", "1,2", "--min-time", "0.05", "--min-iters", "5", "--warmup", "0.02"]
    args += ["--split", "train=8", "--split", "evaluation=8", "--out", str(tmp_path / "results")]
    process = segbench_process(args, env, cwd=ROOT)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    run_dir = (tmp_path / "results" / "latest").resolve()
    df = pd.read_parquet(run_dir / "results.parquet")
    assert (df["status"] == "ok").all()
    shapes = list(zip(df["input_size"], df["batch_size"], df["backend"]))
    assert shapes == [
        (size, batch, backend) for size in ("", "64x64") for batch in (1, 2) for backend in ("torch-eager", "ort")
    ]
    assert list(zip(df["input_height"], df["input_width"])) == [(128, 128)] * 4 + [(64, 64)] * 4
    own, swept = df[df["input_size"] == ""], df[df["input_size"] != ""]
    assert own["dice"].notna().all() and (own["evaluation_status"] == "ok").all()
    assert swept["dice"].isna().all()
    assert (swept["evaluation_status"] == "not measured: quality is measured at the suite's own size (128x128)").all()
    references = df[df["backend"] == "torch-eager"]
    assert (references["speedup_vs_fp32"] == 1.0).all()  # each shape's own reference
    assert df["speedup_vs_fp32"].notna().all()

    decision = json.loads((run_dir / "decision.json").read_text())
    assert [group["batch_size"] for group in decision["groups"]] == [1, 2]  # at the suite's own size only
    report = (run_dir / "report.md").read_text()
    assert "## Shape sweep" in report and "64x64 b2" in report and "k = " in report
    assert (run_dir / "figures" / "sweep_synthetic-nuclei_tests-bench-models-byo-fixture-tiny-net.png").is_file()
    assert "| batch |" in out.replace("  ", " ").replace("  ", " ") and "128x128 (suite)" in out
    settings = tomllib.loads((run_dir / "config.toml").read_text())
    assert settings["input-sizes"] == ["64x64", "128x128"] and settings["batch-sizes"] == [1, 2]

    resumed = segbench_process(["run", "--resume", str(run_dir)], env, cwd=ROOT)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert (out + err).count("finished earlier, kept") == 8
    assert len(pd.read_parquet(run_dir / "results.parquet")) == 8
