"""A run on a busy machine says so: every row timed while another process held a core is marked noisy."""

import pandas as pd
import pytest

from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.helpers import busy_cores

pytestmark = pytest.mark.slow


def test_rows_timed_under_a_busy_core_are_marked_noisy(session_cache, trained_unet_model, tmp_path):
    config = RunConfig(
        backends=("torch-eager", "ort"),
        results_root=tmp_path,
        threads=2,
        progress=False,
        gradcam=False,
        timing=TimingConfig(warmup_s=0.1, min_time_s=0.5, min_iters=10),
    )
    with busy_cores(1, seconds=180):
        run_dir = run_benchmark(config, log=lambda message: None)
    df = pd.read_parquet(run_dir / "results.parquet").set_index("backend")
    for backend in ("torch-eager", "ort"):
        row = df.loc[backend]
        assert row["status"] == "ok" and row["timing_mode"] == "interleaved"
        assert row["cpu_other_pct"] > 20  # one of two cores was busy elsewhere
        assert row["timing_quality"].startswith("noisy: ") and "other processes used" in row["timing_quality"]
        assert row["timing_rounds"] >= 1 and row["reference_kernel_ms"] > 0
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert set(samples.columns) >= {"round", "latency_ns"}
