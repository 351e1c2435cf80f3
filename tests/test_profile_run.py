"""`segbench run --profile` end to end: every CPU backend's profiled pass lands in profile.parquet and in
the row's profile columns; a backend without a profiler says so; the timing is untouched by it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.bench.models.byo_fixture import TinyNet
from tests.bench.test_backend import PLUGIN

pytestmark = pytest.mark.slow

# one backend per profiler kind (torch hooks, TorchScript order, ONNX Runtime, OpenVINO); the others' are
# tested beside their sessions
PROFILED = ("torch-eager", "ort-qdq-int8", "torch-fx-int8", "openvino-int8")


def test_every_cpu_backend_is_profiled_and_a_backend_without_profiler_says_so(
    session_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN))
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    config = RunConfig(
        models=("tests.bench.models.byo_fixture:tiny_net",),
        weights=tmp_path / "weights.pt",
        backends=(*PROFILED, "dummy-threshold"),
        results_root=tmp_path / "results",
        threads=1,
        progress=False,
        gradcam=False,
        splits={"train": 8, "evaluation": 8},
        timing=TimingConfig(warmup_s=0.05, min_time_s=0.2, min_iters=5),
        profile=True,
        profile_calls=5,
    )
    run_dir = run_benchmark(config, log=lambda message: None)
    rows = pd.read_parquet(run_dir / "results.parquet").set_index("backend")
    assert (rows.status == "ok").all(), rows.status.to_dict()
    assert rows.loc["dummy-threshold", "profile_status"] == "not available: dummy-threshold has no profiler"
    ops = pd.read_parquet(run_dir / "profile.parquet")
    for backend in PROFILED:
        assert rows.loc[backend, "profile_status"] == "ok", (backend, rows.loc[backend, "profile_status"])
        assert rows.loc[backend, "profile_calls"] == 5
        assert rows.loc[backend, "profile_ms_per_run"] > 0 and rows.loc[backend, "profile_ops_vs_p50_pct"] > 0
        mine = ops[ops.backend == backend]
        assert len(mine) and (mine.us_per_run > 0).all()
        assert mine.layer.isin(["features.0", "features.2", "head"]).any(), (backend, mine.layer.unique())
        if rows.loc[backend, "precision"] == "int8":
            assert (mine.op_precision == "int8").any(), (backend, mine[["op_type", "op_precision"]])
        assert any((run_dir / "profiles").glob(f"*{backend}-*"))  # the runtime's own files are kept
    assert "dummy-threshold" not in set(ops.backend)
    report = (run_dir / "report.md").read_text()
    assert "## Profiles" in report and "profile.parquet" in report
    # the latency columns come from the timing, never from the profiled pass
    samples = pd.read_parquet(run_dir / "samples.parquet")
    for backend in PROFILED:
        timed = samples[samples.backend == backend].latency_ns
        assert rows.loc[backend, "latency_iterations"] == len(timed)
