"""`segbench run --profile` end to end on the ONNX-based backends, whose profiles name layers through what
their artifacts store (ONNX Runtime's own optimized graph; OpenVINO's ONNX node map from `prepare`):
profile.parquet, the row's profile columns, the runtimes' files, the report. torch-eager's profile and a
backend without a profiler are checked in tests/test_isolation.py's run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.bench.models.byo_fixture import TinyNet

pytestmark = pytest.mark.slow

PROFILED = ("ort-qdq-int8", "openvino-int8")


def test_onnx_based_int8_backends_are_profiled_with_their_layers(session_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    config = RunConfig(
        models=("tests.bench.models.byo_fixture:tiny_net",),
        weights=tmp_path / "weights.pt",
        backends=PROFILED,
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
    ops = pd.read_parquet(run_dir / "profile.parquet")
    for backend in PROFILED:
        assert rows.loc[backend, "profile_status"] == "ok", (backend, rows.loc[backend, "profile_status"])
        assert rows.loc[backend, "profile_calls"] == 5
        assert rows.loc[backend, "profile_ms_per_run"] > 0 and rows.loc[backend, "profile_ops_vs_p50_pct"] > 0
        mine = ops[ops.backend == backend]
        # OpenVINO's counters are whole µs per call: a node under 1 µs reads 0, a reading, not a gap
        assert len(mine) and (mine.us_per_run >= 0).all() and mine.us_per_run.notna().all()
        assert (mine[mine.op_type.str.contains("Conv")].us_per_run > 0).all(), backend
        assert set(mine[mine.op_type.str.contains("Conv")].layer) == {"features.0", "features.2", "head"}, backend
        if rows.loc[backend, "precision"] == "int8":
            assert (mine.op_precision == "int8").any(), (backend, mine[["op_type", "op_precision"]])
        assert any((run_dir / "profiles").glob(f"*{backend}-*"))  # the runtime's own files are kept
    report = (run_dir / "report.md").read_text()
    assert "## Profiles" in report and "profile.parquet" in report
    # the latency columns come from the timing, never from the profiled pass
    samples = pd.read_parquet(run_dir / "samples.parquet")
    for backend in PROFILED:
        timed = samples[samples.backend == backend].latency_ns
        assert rows.loc[backend, "latency_iterations"] == len(timed)
