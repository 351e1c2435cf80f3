"""A crashing backend and a fake int8 backend inside a real run: error rows, the rest completes; with
--profile, the profiled pass of a backend that has a profiler lands in profile.parquet and one without
says so (each runtime's profiler is tested beside its session)."""

import pandas as pd
import pytest

from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.bench.test_backend import PLUGIN

pytestmark = pytest.mark.slow


def test_abort_and_fake_int8_are_error_rows_while_the_run_completes(session_cache, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN))
    config = RunConfig(
        backends=("dummy-abort", "torch-eager", "dummy-fake-int8", "dummy-threshold"),
        results_root=tmp_path,
        threads=1,
        progress=False,
        gradcam=False,  # the crash is at load and the fake int8 at preparation: no Grad-CAM needed to reach them
        timing=TimingConfig(warmup_s=0.05, min_time_s=0.2, min_iters=10),
        profile=True,
        profile_calls=5,
    )
    run_dir = run_benchmark(config, log=lambda message: None)
    df = pd.read_parquet(run_dir / "results.parquet").set_index("backend")
    assert df.loc["dummy-abort", "status"] == "error: worker died (killed by SIGABRT)"
    assert df.loc["dummy-fake-int8", "status"].startswith("error: the artifact contains no int8 operator")
    assert df.loc["torch-eager", "status"] == "ok" and df.loc["dummy-threshold", "status"] == "ok"
    assert pd.isna(df.loc["dummy-abort", "latency_p50_ms"])
    # the naive threshold really segments somewhat, and drifts from the float model
    assert 0.2 < df.loc["dummy-threshold", "dice"] < df.loc["torch-eager", "dice"]
    assert df.loc["dummy-threshold", "pixel_agreement"] < 0.99
    # --profile: after the timing, in the measuring worker; never in the latency columns
    assert df.loc["torch-eager", "profile_status"] == "ok" and df.loc["torch-eager", "profile_calls"] == 5
    assert df.loc["dummy-threshold", "profile_status"] == "not available: dummy-threshold has no profiler"
    ops = pd.read_parquet(run_dir / "profile.parquet")
    assert set(ops.backend) == {"torch-eager"} and (ops.us_per_run > 0).all()
    assert ops.layer.str.startswith(("encoder", "decoder", "bottleneck", "head", "pool", "upsample")).any()
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert df.loc["torch-eager", "latency_iterations"] == (samples.backend == "torch-eager").sum()
    assert any((run_dir / "profiles").glob("*torch-eager-fp32*"))
    assert "## Profiles" in (run_dir / "report.md").read_text()
