"""`segbench tune` end to end on the default suite's trained U-Net, with ONNX Runtime int8 (the fastest
to quantize): sensitivity, the fallback, the evaluation split's confirmation, the calibration study,
and a killed tune resumed without measuring again what it finished."""

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.results.files import read_table  # one snapshot of a table the run is rewriting
from tests.helpers import segbench_process

pytestmark = pytest.mark.slow

BASE = [
    "tune",
    "--suite",
    "synthetic-nuclei",
    "--model",
    "unet",
    "--backend",
    "ort-qdq-int8",
    "--threads",
    "1",
    "--min-time",
    "0.2",
    "--min-iters",
    "5",
    "--warmup",
    "0.05",
    "--sqnr-images",
    "2",
]


def _segbench(args: list[str], cache: Path) -> subprocess.Popen:
    return segbench_process(args, {**os.environ, "SEGBENCH_CACHE": str(cache)})


def _folder(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.name.startswith("tune-")]
    return folder


def test_an_unreachable_budget_exits_1_naming_it_and_keeps_every_table(trained_unet_model, session_cache, tmp_path):
    out = tmp_path / "results"
    done = _segbench([*BASE, "--budget", "dice_drift>=0.5", "--max-layers", "2", "--out", str(out)], session_cache)
    stdout, stderr = done.communicate(timeout=900)
    assert done.returncode == 1, stderr[-3000:]
    assert "no configuration met the budget" in stdout and "dice_drift>=0.5" in stdout and "misses by" in stdout
    folder = _folder(out)
    sensitivity = pd.read_parquet(folder / "sensitivity.parquet")
    assert len(sensitivity) == 2 and set(sensitivity["status"]) == {"ok"}
    for column in ("layer", "module_path", "op_type", "layer_sqnr_db", "dice_drift_gain", "miou_gain", "sqnr_db_gain"):
        assert column in sensitivity
    assert sensitivity["layer_sqnr_db"].notna().all()  # qdq_loss_debug matched every measured layer
    # the layer really ran in float (4 ConvTranspose always do, so one of them kept float adds none; on an
    # AVX2-only EPYC a ConvTranspose was among the two layers of worst SQNR)
    transposed = sensitivity["op_type"] == "ConvTranspose"
    assert (sensitivity.loc[~transposed, "float_ops"] > 4).all()
    assert (sensitivity.loc[transposed, "float_ops"] == 4).all()
    tuning = pd.read_parquet(folder / "tuning.parquet")
    timed = tuning[tuning["split"] == "tuning"]
    assert timed["latency_p50_ms"].notna().all() and timed["speedup_vs_fp32"].notna().all()
    assert (tuning["split"] == "evaluation").sum() == 1  # the all-int8 start, confirmed on evaluation
    assert "[layer 1/2]" in stderr and "[step 0]" in stderr
    html = (folder / "report.html").read_text()
    assert "Sensitivity" in html and "Greedy fallback" in html and 'src="data:image/png;base64,' in html


def test_a_met_budget_prints_the_option_line_run_accepts(trained_unet_model, session_cache, tmp_path):
    out = tmp_path / "results"
    done = _segbench([*BASE, "--budget", "dice_drift>=-0.5", "--max-layers", "1", "--out", str(out)], session_cache)
    stdout, stderr = done.communicate(timeout=900)
    assert done.returncode == 0, stderr[-3000:]
    assert "every budget holds with 0 layer(s) in float" in stdout


def test_calibration_study_and_resume_after_kill(trained_unet_model, session_cache, tmp_path):
    out = tmp_path / "results"
    args = [
        *BASE,
        "--calibration-sizes",
        "4,16",
        "--calibration-methods",
        "minmax,entropy",
        "--seeds",
        "1",
        "--out",
        str(out),
    ]
    first = _segbench(args, session_cache)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        folders = [p for p in out.iterdir() if p.name.startswith("tune-")] if out.exists() else []
        path = folders[0] / "calibration.parquet" if folders else None
        if path is not None and path.exists() and len(read_table(path)) >= 2:
            break
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    folder = _folder(out)
    finished = len(pd.read_parquet(folder / "calibration.parquet"))
    assert 2 <= finished < 4
    resumed = _segbench(["tune", "--resume", str(folder)], session_cache)
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    assert stderr.count("[calibration ") and f"[calibration {finished}/4]" not in stderr
    table = pd.read_parquet(folder / "calibration.parquet")
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    assert set(table["method"]) == {"minmax", "entropy"} and set(table["size"]) == {4, 16}
    assert table.groupby(["method", "size", "seed"]).size().max() == 1  # nothing measured twice
    assert "Calibration" in (folder / "report.md").read_text()


@pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="the openvino extra is not installed")
def test_nncf_accuracy_control_is_reported_beside_the_fallback(trained_unet_model, session_cache, tmp_path):
    out = tmp_path / "results"
    args = [*BASE, "--budget", "dice_drift>=-0.0001", "--max-layers", "1", "--out", str(out)]
    args[args.index("ort-qdq-int8")] = "openvino-int8"
    done = _segbench(args, session_cache)
    stdout, stderr = done.communicate(timeout=900)
    assert done.returncode in (0, 1), stderr[-3000:]
    assert "[accuracy control] openvino-int8, dice drop <= 0.0001" in stderr
    peer = pd.read_parquet(_folder(out) / "peer.parquet")
    assert list(peer["split"]) == ["tuning", "evaluation"]
    tuned = peer.iloc[0]
    assert tuned["method"] == "nncf.quantize_with_accuracy_control" and tuned["status"] == "ok"
    assert tuned["latency_p50_ms"] > 0 and tuned["speedup_vs_fp32"] > 0 and tuned["own_seconds"] > 0
    assert tuned["n_float_layers"] == len([x for x in str(tuned["float_layers"]).split(",") if x])
    assert (
        str(tuned["peer_options"]).startswith("ir=") and Path(str(tuned["peer_options"])[3:]).is_file()
    )  # NNCF's own model
    html = (_folder(out) / "report.html").read_text()
    assert "accuracy control beside segbench" in html and "segbench greedy fallback" in html
