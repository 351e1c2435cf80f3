"""Stages that fail after the timing, in a real run: each says so in its own status column (`error:
<cause>`), on the cell's terminal line, at the end of the run and in both reports, while the row keeps
its latency; its traceback goes to the cell's log file. No row has an empty stage without a status."""

from __future__ import annotations

import math
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
RANGE_ERROR = (
    "error: RuntimeError: Check 'input_shapes[1].rank().compatible(0)' failed at range_shape_inference.hpp:47: "
    "While validating node 'Range node_arange_1': 'stop' input is not a scalar"
)
# stage -> (a number the stage fills, its status column)
STAGES = {
    "evaluation": ("dice", "evaluation_status"),
    "gradcam": ("gradcam_pearson", "gradcam_status"),
    "gradcam@fakequant": ("gradcam_pearson@fakequant", "gradcam_status@fakequant"),
    "profile": ("profile_ms_per_run", "profile_status"),
}


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_every_failed_stage_is_in_its_row_the_terminal_and_the_reports(session_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT)]), "SEGBENCH_CACHE": str(session_cache)}
    args = ["run", "--models", "tests.bench.models.byo_fixture:tiny_net", "--weights", str(tmp_path / "weights.pt")]
    args += ["--backends", "torch-eager,dummy-failing-stages,dummy-gradcam-error", "--threads", "1", "--profile"]
    args += ["--profile-calls", "3", "--min-time", "0.2", "--min-iters", "5", "--warmup", "0.05"]
    args += ["--split", "train=8", "--split", "evaluation=8", "--out", str(tmp_path / "results")]
    process = segbench_process(args, env, cwd=ROOT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    run_dir = (tmp_path / "results" / "latest").resolve()
    df = pd.read_parquet(run_dir / "results.parquet").set_index("backend")
    assert (df["status"] == "ok").all() and (df["latency_p50_ms"] > 0).all()  # every latency stands

    failing = df.loc["dummy-failing-stages"]
    assert failing["evaluation_status"] == "error: RuntimeError: the logits could not be read back"
    assert _empty(failing["dice"]) and _empty(failing["evaluation_peak_rss_mib"])
    assert failing["profile_status"] == "error: RuntimeError: the profiler lost its counters"
    assert failing["gradcam_status"] == "ok" and not _empty(failing["gradcam_pearson"])  # its maps stand
    assert failing["gradcam_status@fakequant"] == "error: RuntimeError: the fake-quant simulation diverged"
    crashed = df.loc["dummy-gradcam-error"]
    assert crashed["gradcam_status"] == RANGE_ERROR and crashed["evaluation_status"] == "ok"
    assert crashed["dice"] > 0 and _empty(crashed["gradcam_pearson"])
    reference = df.loc["torch-eager"]
    assert reference["gradcam_status@fakequant"] == "not available: nothing quantized to simulate in fp32"

    for backend, row in df.iterrows():  # an empty stage always says why
        for stage, (number, status) in STAGES.items():
            assert not _empty(row[status]), f"{backend}: {status} is empty"
            zero_maps = stage.startswith("gradcam") and row.get(number.replace("pearson", "zero_maps"), 0) > 0
            if _empty(row.get(number)) and not zero_maps:
                assert row[status] != "ok", f"{backend}: {number} is empty while {status} is ok"

    lines = {b: line for line in err.splitlines() for b in df.index if f"/ {b} " in line and ": ok, p50" in line}
    log = next((run_dir / "logs").glob("*dummy-failing-stages*.log"))
    assert lines["dummy-failing-stages"].endswith(
        "FAILED: evaluation error: RuntimeError: the logits could not be read back; gradcam@fakequant error: "
        "RuntimeError: the fake-quant simulation diverged; profile error: RuntimeError: the profiler lost its "
        f"counters (traceback in {log})"
    )
    assert ", dice " not in lines["dummy-failing-stages"]
    assert f"FAILED: gradcam {RANGE_ERROR} (traceback in " in lines["dummy-gradcam-error"]
    assert "FAILED" not in lines["torch-eager"]
    summary = [line for line in err.splitlines() if "stage failure(s)" in line]
    assert len(summary) == 1 and summary[0].startswith("4 stage failure(s) in 2 of 3 rows (their other numbers")
    text = log.read_text()
    assert "Grad-CAM by fake-quant failed" in text and "the fake-quant simulation diverged" in text
    assert text.count("Traceback (most recent call last)") == 3  # evaluation, fake-quant, profiler

    report = (run_dir / "report.md").read_text()
    assert "## Stages that failed" in report
    for stage, status in [
        ("evaluation", "error: RuntimeError: the logits could not be read back"),
        ("profile", "error: RuntimeError: the profiler lost its counters"),
        ("gradcam@fakequant", "error: RuntimeError: the fake-quant simulation diverged"),
    ]:
        assert (
            f"- synthetic-nuclei / tests.bench.models.byo_fixture:tiny_net / dummy-failing-stages int8: {stage}: "
            f"{status}" in report
        )
    assert f"dummy-gradcam-error fp32: gradcam: {RANGE_ERROR}" in report
    grad_table = report.split("## Grad-CAM")[1].split("##")[0]
    assert "dummy-gradcam-error" in grad_table and "| error" in grad_table  # the row is in the table, marked
    page = (run_dir / "report.html").read_text()
    assert "Stages that failed" in page and "the profiler lost its counters" in page
