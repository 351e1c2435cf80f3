"""The default benchmark from training to tables: the foundation's promises, measured."""

import json

import pandas as pd
import pytest

from bench.data.suite import get_suite
from bench.measure.contention import SHORT_QUIET_SHARE
from bench.training.checkpoints import checkpoint_path, load_checkpoint
from bench.training.recipes import DEFAULT_RECIPE

pytestmark = pytest.mark.slow

REQUIRED_COLUMNS = [
    "suite",
    "model",
    "backend",
    "precision",
    "device",
    "status",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_iterations",
    "threads",
    "peak_rss_mib",
    "model_size_bytes",
    "dice",
    "miou",
    "dice_drift",
    "miou_drift",
    "pixel_agreement",
    "speedup_vs_fp32",
    "timing_mode",
    "timing_rounds",
    "cpu_other_pct",
    "reference_kernel_ms",
    "timing_quality",
]


def _by_backend(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {row.backend: row for _, row in df.iterrows()}


CPU_BACKENDS = {"torch-eager", "ort", "ort-qdq-int8", "torch-fx-int8", "torchao-pt2e-int8"}
INT8_BACKENDS = {"ort-qdq-int8", "torch-fx-int8", "torchao-pt2e-int8"}


def test_every_cell_has_a_row_with_required_columns(default_run):
    run_dir, df = default_run
    assert all(c in df.columns for c in REQUIRED_COLUMNS)
    rows = _by_backend(df)
    assert df.backend.iloc[0] == "torch-eager"  # the reference heads the table
    for name in CPU_BACKENDS:
        assert rows[name].status == "ok", (name, rows[name].status)
        assert rows[name].timing_mode == "interleaved" and rows[name].timing_rounds >= 1
        row = rows[name]  # the backend's own memory: what loading and timing added to the process
        assert (
            0 < row.baseline_rss_mib < row.peak_rss_mib
            and row.backend_rss_mib == row.peak_rss_mib - row.baseline_rss_mib
        )
        assert row.evaluation_peak_rss_mib > 0
        assert rows[name].timing_quality == "ok" or rows[name].timing_quality.startswith("noisy: ")
    for name in ("tensorrt-int8", "tensorrt-fp16"):
        assert rows[name].status == "unavailable: tensorrt is not importable"
        assert pd.isna(rows[name].latency_p50_ms) and pd.isna(rows[name].model_size_bytes)  # no invented number
    assert pd.read_csv(run_dir / "results.csv").shape == df.shape


def test_reference_model_really_segments(default_run, session_cache):
    suite = get_suite("synthetic-nuclei")
    _, meta = load_checkpoint("unet", suite, checkpoint_path("unet", suite, DEFAULT_RECIPE))
    assert meta["evaluation_dice"] >= 0.85
    assert meta["loss_curve"][-1] < meta["loss_curve"][0] / 5
    assert _by_backend(default_run[1])["torch-eager"].dice >= 0.85


def test_int8_drift_is_small_but_not_zero(default_run):
    rows = _by_backend(default_run[1])
    eager = rows["torch-eager"]
    assert eager.pixel_agreement == 1.0 and eager.dice_drift == 0.0
    for name in INT8_BACKENDS:
        assert 0.97 < rows[name].pixel_agreement < 1.0, name  # quantization changed some pixels, but few
        assert abs(rows[name].dice_drift) < 0.06 and abs(rows[name].miou_drift) < 0.06, name
    assert rows["ort"].pixel_agreement > 0.9999  # same float arithmetic, another runtime


def test_int8_artifacts_are_smaller_than_0_4x_fp32(default_run):
    rows = _by_backend(default_run[1])
    for name in INT8_BACKENDS:
        assert rows[name].model_size_bytes < 0.4 * rows["torch-eager"].model_size_bytes, name


def test_int8_rows_report_operator_coverage(default_run):
    run_dir, df = default_run
    rows = _by_backend(df)
    for name in INT8_BACKENDS:
        assert rows[name].int8_ops >= 19, name  # every Conv2d of the U-Net
    assert "ConvTranspose" in rows["ort-qdq-int8"].float_op_types  # no int8 ConvTranspose kernel in ORT CPU
    details = json.loads((run_dir / "per_backend.json").read_text())
    ort = next(v for k, v in details.items() if "/ort-qdq-int8/" in k)
    assert ort["int8_ops"]["QLinearConv"] == 19 and ort["float_ops"]["ConvTranspose"] == 4


def test_latency_percentiles_are_ordered_and_samples_kept(default_run):
    run_dir, df = default_run
    ok = df[df.status == "ok"]
    minimum = 30  # the default_run fixture's min_iters (conftest)
    for _, row in ok.iterrows():
        assert 0 < row.latency_p50_ms <= row.latency_p90_ms <= row.latency_p99_ms
        assert row.threads == 2 and row.latency_cv >= 0
        if row.timing_quality == "ok":
            assert row.latency_iterations >= minimum, row.backend
        else:  # quiet cycles short of the minimum count alone when they hold half of it, and the row says so
            assert "too few quiet rounds" in row.timing_quality or row.latency_iterations >= minimum, row.backend
            assert row.latency_iterations >= SHORT_QUIET_SHARE * minimum, row.backend
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert samples.groupby("backend").size().to_dict() == dict(zip(ok.backend, ok.latency_iterations))


def test_run_folder_has_report_env_and_latest(default_run):
    run_dir, _ = default_run
    report = (run_dir / "report.md").read_text()
    assert "| torch-eager" in report and "| ort-qdq-int8" in report and "| torch-fx-int8" in report
    env = json.loads((run_dir / "env.json").read_text())
    for key in (
        "cpu_model",
        "cpu_flags",
        "logical_cores",
        "threads",
        "os",
        "python",
        "libraries",
        "git_commit",
        "date",
    ):
        assert key in env
    assert env["libraries"]["torch"] and env["libraries"]["onnxruntime"]
    assert (run_dir.parent / "latest").resolve() == run_dir.resolve()
    html = (run_dir / "report.html").read_text()
    assert 'id="summary"' in html and html.count("data:image/png;base64,") >= 4  # latency, size, Pareto, Dice box
    per_image = pd.read_parquet(run_dir / "per_image.parquet")
    assert per_image.groupby("backend").size().max() == 64  # every evaluation image
    assert json.loads((run_dir / "run.json").read_text())["threads"] == 2


def test_every_int8_backend_is_explained_by_finite_differences_with_its_floor(default_run):
    """One primary method for every int8 backend that can be cut, the second beside it, the floors
    measured, the fp32 ONNX cut checked against autograd, and every comparison kept with its method."""
    run_dir, df = default_run
    rows = _by_backend(df[df["status"] == "ok"])
    for name in INT8_BACKENDS:
        row = rows[name]
        assert row["gradcam_method"] == "finite-difference" and not str(row["gradcam_status"]).startswith("invalid")
        assert 0.9 < row["gradcam_step_pearson"] <= 1.0 and row["gradcam_floor_pearson"] <= row["gradcam_step_pearson"]
        assert row["gradcam_within_noise"] in (True, False)
    for name in ("torch-fx-int8", "torchao-pt2e-int8"):  # the second method exists for these two
        assert 0.9 < rows[name]["gradcam_pearson@fakequant"] <= 1.0 and rows[name]["gradcam_method_pearson"] > 0.9
    assert rows["ort"]["gradcam_status"] == "ok" and rows["ort"]["gradcam_pearson"] >= 0.999  # the cut's check
    records = pd.read_parquet(run_dir / "gradcam.parquet")
    fx = records[records["backend"] == "torch-fx-int8"]
    assert set(fx["method"]) == {"finite-difference", "fake-quant"} and set(fx["step"].dropna()) == {2, 4, 8}


def test_the_run_decides_with_intervals_it_can_recompute(default_run):
    """decision.json names one recommendation that meets the default budget; every ok row has a 95%
    interval around its speedup (interleaved: paired cycles) and its drifts (bootstrap over the 64
    images), and per_image.parquet holds the counts a bootstrap recomputes mIoU from."""
    import numpy as np

    from bench.measure.metrics import dataset_metrics

    run_dir, df = default_run
    ok = df[df.status == "ok"]
    paired = ok[ok.speedup_method.str.startswith("paired")]
    assert len(paired) == len(ok)
    assert (paired.speedup_vs_fp32_ci_low <= paired.speedup_vs_fp32).all()
    assert (paired.speedup_vs_fp32 <= paired.speedup_vs_fp32_ci_high).all()
    assert paired.speedup_ci_method.str.contains("per-cycle ratios").all()
    for metric in ("miou", "dice", "mean_bf_score"):
        low, high = ok[f"{metric}_drift_ci_low"], ok[f"{metric}_drift_ci_high"]
        assert (low <= high).all() and ok[f"{metric}_drift"].between(low - 1e-9, high + 1e-9).all(), metric
    assert ok.drift_ci_method.str.startswith("paired bootstrap over 64 images").all()
    per_image = pd.read_parquet(run_dir / "per_image.parquet")
    for backend, images in per_image.groupby("backend"):
        tp, fp, fn = (np.stack(images[c].to_list()).sum(axis=0) for c in ("class_tp", "class_fp", "class_fn"))
        row = ok[ok.backend == backend].iloc[0]
        assert dataset_metrics(tp, fp, fn, [1])["miou"] == pytest.approx(row.miou, abs=1e-12), backend
    decision = json.loads((run_dir / "decision.json").read_text())
    assert decision["schema_version"] == 1 and decision["objective"] == "latency"
    [group] = decision["groups"]
    assert group["budgets"][0]["bound"].startswith("dice_drift>=-0.00")  # 99% of fp32 Dice, two classes
    assert "MLPerf" in group["budgets"][0]["source"]
    recommended = [c for c in group["cells"] if c["verdict"] == "recommended"]
    if (ok.timing_quality == "ok").any():  # a candidate with trustworthy timing: one recommendation
        assert len(recommended) == 1 and group["recommended"] == recommended[0]["cell"] == group["cells"][0]["cell"]
    else:  # every row noisy (a busy or slow machine): the decision withholds its answer and says why
        assert not recommended and group["recommended"] is None
        assert group["headline"].startswith("no cell meets every budget with trustworthy numbers")
        assert {c["verdict"] for c in group["cells"]} == {"timing not judged", "unavailable"}
    assert len(group["cells"]) == len(df) and all(c["reason"] or c["verdict"] == "recommended" for c in group["cells"])
    report = (run_dir / "report.md").read_text()
    assert report.index("## Decision: which backend to ship") < report.index("## Summary")
    assert group["headline"] in report
