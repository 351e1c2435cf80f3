"""`--scenario offline` and `--scenario server` in real runs, against a backend of known service time: the
plugin's dummy-threshold sleeps 10 ms a call whatever the batch, and may be called from 2 threads at once
(the default throughput settings at `--threads 2`). Offline, its best is batch 4 x 2 callers: 2 x 4 per
call of the same service time, 8 times the rate of batch 1 x 1 caller measured in the same run (within 6%),
and at most 2 x 4 / 10 ms = 800 images/s. The service time is measured, not taken as 10 ms: a call in a run
is the sleep plus the session's own work, at the timed rounds' priority, and on this VM (an AVX2 EPYC) it
took 10.3-10.6 ms where a bare `time.sleep(0.01)` took 10.17 ms, so CI read 755 images/s with a 5% bound
on 800. A backend whose session has no throughput mode says so in its status column, and keeps its latency
and quality."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.results.columns import undeclared
from tests.bench.models.byo_fixture import TinyNet
from tests.bench.test_backend import PLUGIN
from tests.helpers import segbench_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NO_MODE = "error: RuntimeError: this runtime has no throughput mode"


def _run(session_cache: Path, tmp_path: Path, *scenario: str) -> tuple[pd.DataFrame, Path, str]:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT)]),
        "SEGBENCH_CACHE": str(session_cache),
        "DUMMY_THRESHOLD_DELAY_MS": "10",
    }
    args = ["run", "--models", "tests.bench.models.byo_fixture:tiny_net", "--weights", str(tmp_path / "weights.pt")]
    args += ["--backends", "dummy-threshold,dummy-no-throughput", "--threads", "2", "--no-gradcam"]
    args += ["--min-time", "0.2", "--min-iters", "5", "--warmup", "0.05", "--split", "train=8"]
    args += ["--split", "evaluation=8", "--out", str(tmp_path / "results"), *scenario]
    process = segbench_process(args, env, cwd=ROOT)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    run_dir = (tmp_path / "results" / "latest").resolve()
    table = pd.read_parquet(run_dir / "results.parquet")
    scenario_columns = [c for c in table.columns if c.startswith(("offline_", "server_"))]
    assert scenario_columns and undeclared(scenario_columns) == []  # each declared, text ones too
    return table.set_index("backend"), run_dir, out + err


def test_offline_finds_the_best_setting_and_the_decision_ranks_on_it(session_cache: Path, tmp_path: Path) -> None:
    scenario = ["--scenario", "offline", "--offline-batch-sizes", "1,4", "--scenario-time", "0.5"]
    df, run_dir, output = _run(session_cache, tmp_path, *scenario, "--objective", "throughput")
    dummy = df.loc["dummy-threshold"]
    assert dummy["offline_status"] == "ok" and dummy["offline_setting"] == "batch 4, 2 callers"
    assert (dummy["offline_batch_size"], dummy["offline_callers"], dummy["offline_settings_tried"]) == (4, 2, 4)
    assert str(dummy["offline_timing_quality"]).startswith(("ok", "noisy", "unmeasured"))
    tried = json.loads((run_dir / "per_backend.json").read_text())
    settings = next(v for k, v in tried.items() if "/dummy-threshold/" in k)["offline_settings"]
    assert [s["setting"] for s in settings] == [
        "batch 1, 1 caller",
        "batch 1, 2 callers",
        "batch 4, 1 caller",
        "batch 4, 2 callers",
    ]
    one_call_per_service_time = settings[0]["images_per_s"]  # batch 1, 1 caller: 1 / the measured service time
    assert dummy["offline_ips"] == pytest.approx(8 * one_call_per_service_time, rel=0.06)
    assert 0.7 * 800 <= dummy["offline_ips"] <= 1.01 * 800  # no call beats its 10-ms sleep; none took 14 ms
    failed = df.loc["dummy-no-throughput"]
    assert failed["offline_status"] == NO_MODE and math.isnan(failed["offline_ips"])
    assert failed["latency_p50_ms"] > 0 and failed["dice"] > 0  # its other numbers stand
    assert f"FAILED: offline {NO_MODE}" in output
    assert "images/s offline (batch 4, 2 callers)" in output or "timing not judged" in output


def test_server_finds_the_highest_rate_under_the_bound(session_cache: Path, tmp_path: Path) -> None:
    """2 callers of 10 ms take 200 queries/s; with the bound at 4 S = 40 ms an ideal M/D/2 queue keeps p99
    under it to about 85% of that. A short search (100 queries a probe) scatters around it, and a busy
    machine slows the service, so the rate is held to [40%, 100%] of the capacity."""
    df, _, _ = _run(session_cache, tmp_path, "--scenario", "server", "--latency-bound", "40", "--scenario-time", "1")
    dummy = df.loc["dummy-threshold"]
    assert str(dummy["server_status"]).startswith(("ok", "unconfirmed")), dummy["server_status"]
    assert dummy["server_setting"] == "batch 1, 2 callers" and dummy["server_latency_bound_ms"] == 40.0
    assert 0.4 * 200 <= dummy["server_max_rate_ips"] <= 200
    assert dummy["server_search_p99_ms"] <= 40.0 and dummy["server_p50_ms"] >= 10.0
    assert dummy["server_probes"] >= 3 and dummy["server_queries"] >= 100
    failed = df.loc["dummy-no-throughput"]
    assert failed["server_status"] == NO_MODE and math.isnan(failed["server_max_rate_ips"])
    assert failed["latency_p50_ms"] > 0
