"""A run on a busy machine: at normal priority every row timed while another process held a core says so;
at the default priority the timed rounds keep the machine to themselves and the rows say what they ran at."""

import pandas as pd
import pytest

from bench.measure.priority import timed_at
from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.helpers import busy_cores

pytestmark = pytest.mark.slow

BACKENDS = ("torch-eager", "ort")


def _run_under_a_busy_core(tmp_path, priority: str) -> pd.DataFrame:
    config = RunConfig(
        backends=BACKENDS,
        results_root=tmp_path,
        threads=2,
        progress=False,
        gradcam=False,
        timing=TimingConfig(warmup_s=0.1, min_time_s=0.5, min_iters=10, priority=priority),
    )
    with busy_cores(1, seconds=180):
        run_dir = run_benchmark(config, log=lambda message: None)
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert set(samples.columns) >= {"round", "latency_ns"}
    return pd.read_parquet(run_dir / "results.parquet").set_index("backend")


def test_rows_timed_under_a_busy_core_at_normal_priority_are_marked_noisy(session_cache, trained_unet_model, tmp_path):
    df = _run_under_a_busy_core(tmp_path, "normal")
    for backend in BACKENDS:
        row = df.loc[backend]
        assert row["status"] == "ok" and row["timing_mode"] == "interleaved"
        assert row["timing_priority"].startswith("normal (")
        assert row["cpu_other_pct"] > 20  # one of two cores was busy elsewhere
        assert row["timing_quality"].startswith("noisy: ") and "other processes used" in row["timing_quality"]
        assert row["timing_rounds"] >= 1 and row["reference_kernel_ms"] > 0


def test_realtime_rounds_keep_a_busy_core_out_of_the_timing(session_cache, trained_unet_model, tmp_path):
    with timed_at("realtime") as grant:
        if grant.got != "realtime":
            pytest.skip(f"this process may not ask for SCHED_RR: {grant.detail}")
    df = _run_under_a_busy_core(tmp_path, "realtime")
    for backend in BACKENDS:
        row = df.loc[backend]
        assert row["status"] == "ok" and row["timing_priority"] == "realtime (SCHED_RR 1)"
        # measured here: 0.6-2.0% against 35-47% at normal priority; the busy process runs between rounds
        assert row["cpu_other_pct"] < 10, row["cpu_other_pct"]
