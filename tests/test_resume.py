"""A run killed mid-way keeps every finished cell, and --resume finishes it without recomputing them."""

import os
import signal
import time

import pandas as pd
import pytest

from bench.results.files import read_table  # one snapshot of a table the run is rewriting
from tests.bench.test_backend import PLUGIN
from tests.helpers import segbench_process

pytestmark = pytest.mark.slow


_segbench = segbench_process


def test_resume_after_kill_recomputes_nothing_finished(session_cache, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PLUGIN), "SEGBENCH_CACHE": str(session_cache)}
    args = [
        "run",
        "--backends",
        "torch-eager,dummy-threshold,ort",
        "--out",
        str(tmp_path),
        "--threads",
        "1",
        "--min-time",
        "0.2",
        "--min-iters",
        "10",
        "--warmup",
        "0.05",
    ]
    process = _segbench(args, env)
    results = None
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and process.poll() is None:
        found = list(tmp_path.glob("*/results.parquet"))
        if found and len(read_table(found[0])) >= 1:
            results = found[0]
            break
        time.sleep(0.2)
    assert results is not None, "the first cell never finished"
    os.killpg(process.pid, signal.SIGKILL)  # the whole run, workers included
    process.wait()
    before = pd.read_parquet(results)
    samples_before = pd.read_parquet(results.parent / "samples.parquet")
    assert len(before) in (1, 2) and set(before.status) == {"ok"}

    resumed = _segbench(["run", "--resume", str(results.parent)], env)
    out, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err
    after = pd.read_parquet(results)
    assert list(after.backend) == ["torch-eager", "dummy-threshold", "ort"]
    assert (after.status == "ok").all()
    assert err.count("finished earlier, kept") == len(before)
    kept = after.iloc[: len(before)]
    for column in ("latency_p50_ms", "duration_s", "latency_iterations"):
        assert kept[column].tolist() == before[column].tolist()  # not recomputed
    samples_after = pd.read_parquet(results.parent / "samples.parquet")
    first = samples_before.backend == "torch-eager"
    assert (
        samples_after[samples_after.backend == "torch-eager"].latency_ns.tolist()
        == samples_before[first].latency_ns.tolist()
    )
    assert (results.parent / "report.html").exists()
