"""A runtime from another distribution, in a real run, with no line of it under bench/ (issue 32): its int8
cell is profiled beside its own float cell (the counterpart it declares), and env.json records the version of
the library it declares, which also keys its artifacts (tests/bench/test_backend.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.bench.models.byo_fixture import TinyNet
from tests.bench.test_backend import PLUGIN
from tests.helpers import segbench_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_a_plugin_runtime_is_judged_against_its_own_float_cell(session_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT)]), "SEGBENCH_CACHE": str(session_cache)}
    args = ["run", "--models", "tests.bench.models.byo_fixture:tiny_net", "--weights", str(tmp_path / "weights.pt")]
    args += ["--backends", "torch-eager,dummy-float,dummy-int8", "--threads", "1", "--profile", "--no-gradcam"]
    args += ["--profile-calls", "3", "--min-time", "0.2", "--min-iters", "5", "--warmup", "0.05"]
    args += ["--split", "train=8", "--split", "evaluation=8", "--out", str(tmp_path / "results")]
    process = segbench_process(args, env, cwd=ROOT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    run_dir = (tmp_path / "results" / "latest").resolve()
    df = pd.read_parquet(run_dir / "results.parquet").set_index("backend")
    assert (df["status"] == "ok").all()

    libraries = json.loads((run_dir / "env.json").read_text())["libraries"]
    assert libraries["segbench-dummy-backends"] == "0.1" and libraries["torchao"]  # every backend's, declared

    report = (run_dir / "report.md").read_text()
    # the int8 layer at 300 µs a call beside its own runtime's 100 µs, not beside torch-eager's layers
    # (the decision's line may also say "not faster than fp32 eager" when the tiny net's int8 times near
    # eager's: the profile section's line is the one that names the counterpart)
    lines = [line for line in report.splitlines() if "dummy-int8 int8" in line and "is not faster than" in line]
    assert len(lines) == 1, report
    not_faster = lines[0]
    assert "is not faster than dummy-float fp32" in not_faster, not_faster
    assert "layer head (Conv, int8) 0.3 ms/run (fp32: 0.1)" in not_faster, not_faster
