"""compare on hand-made run folders: real statistics on raw samples, exact exit codes."""

import json

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.report.compare import compare_runs, latency_verdict, load_run

ENV = {"cpu_model": "Test CPU", "logical_cores": 2, "gpu": None, "threads": 2}


def make_run(
    path,
    p50_ms=10.0,
    spread=0.02,
    dice=0.95,
    seed=0,
    n=300,
    env=ENV,
    backends=("torch-eager", "ort-qdq-int8"),
    timing_quality="ok",
    checkpoint="ck1",
):
    """A run folder whose latency samples are lognormal around `p50_ms` with relative `spread`."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows, samples = [], []
    for i, backend in enumerate(backends):
        median = p50_ms / (i + 1)
        values = (median * np.exp(rng.normal(0, spread, n)) * 1e6).astype(np.int64)
        ident = dict(suite="s", model="unet", backend=backend, precision="fp32", device="cpu", batch_size=1)
        rows.append(
            {
                **ident,
                "status": "ok",
                "latency_p50_ms": float(np.median(values)) / 1e6,
                "dice": dice,
                "miou": dice - 0.01,
                "dice_drift": -0.001,
                "pixel_agreement": 0.999,
                "iou_nucleus": dice - 0.05,
                "timing_quality": timing_quality,
                "checkpoint_digest": checkpoint,
            }
        )
        samples.append(pd.DataFrame({**ident, "iteration": np.arange(n), "latency_ns": values}))
    pd.DataFrame(rows).to_parquet(path / "results.parquet")
    pd.concat(samples).to_parquet(path / "samples.parquet")
    (path / "env.json").write_text(json.dumps(env))
    return path


def test_injected_30_percent_slowdown_is_flagged(tmp_path, capsys):
    base = make_run(tmp_path / "base")
    slow = make_run(tmp_path / "slow", p50_ms=13.0, seed=1)
    assert main(["compare", str(base), str(slow)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "latency p50" in out


@pytest.mark.parametrize("side", ["baseline", "current"])
def test_a_slowdown_timed_on_a_busy_machine_is_not_judged(tmp_path, capsys, side):
    busy = "noisy: other processes used 45% of the CPU"
    base = make_run(tmp_path / "base", timing_quality=busy if side == "baseline" else "ok")
    slow = make_run(tmp_path / "slow", p50_ms=13.0, seed=1, timing_quality=busy if side == "current" else "ok")
    assert main(["compare", str(base), str(slow)]) == 0  # the 30% would be a regression on a quiet machine
    out = capsys.readouterr().out
    assert out.count(f"not judged: noisy ({side})") == 2 and "REGRESSION" not in out
    worse = make_run(tmp_path / "worse", dice=0.90, timing_quality=busy)
    assert main(["compare", str(base), str(worse)]) == 1  # quality does not depend on timing: still judged


def test_2_percent_noise_is_not_flagged(tmp_path):
    base = make_run(tmp_path / "base")
    noisy = make_run(tmp_path / "noisy", p50_ms=10.2, seed=2)
    assert main(["compare", str(base), str(noisy)]) == 0


def test_large_ratio_without_significance_is_not_flagged():
    rng = np.random.default_rng(0)
    base = rng.lognormal(np.log(1e7), 0.8, 6)
    cur = base[::-1] * 1.2  # same shape, 20% slower median, tiny noisy samples
    ratio, p, regressed = latency_verdict(base, cur, 0.10)
    assert ratio > 1.1 and p >= 0.01 and not regressed


def test_identical_runs_exit_0_and_threshold_accepts_percent(tmp_path, capsys):
    base = make_run(tmp_path / "base")
    same = make_run(tmp_path / "same")
    assert main(["compare", str(base), str(same), "--latency-threshold", "10%"]) == 0
    assert "## Regressions\n\nnone" in capsys.readouterr().out


def test_quality_regression_is_detected(tmp_path):
    base = make_run(tmp_path / "base")
    worse = make_run(tmp_path / "worse", dice=0.93)
    comparison = compare_runs(load_run(base), load_run(worse), quality_threshold=0.005)
    assert any("dice 0.9500 -> 0.9300" in r for r in comparison.regressions)
    assert any("iou_nucleus" in r for r in comparison.regressions)
    assert main(["compare", str(base), str(worse), "--quality-threshold", "0.05"]) == 0


def test_rows_on_one_side_and_status_changes(tmp_path, capsys):
    base = make_run(tmp_path / "base", backends=("torch-eager", "ort-qdq-int8", "ort"))
    cur = make_run(tmp_path / "cur", backends=("torch-eager", "ort-qdq-int8", "torch-fx-int8"))
    table = pd.read_parquet(cur / "results.parquet")
    table.loc[1, "status"] = "error: worker died (killed by SIGABRT)"
    table.to_parquet(cur / "results.parquet")
    assert main(["compare", str(base), str(cur)]) == 1
    out = capsys.readouterr().out
    assert (
        "only in baseline: s/unet/ort/fp32/cpu/1" in out and "only in current: s/unet/torch-fx-int8/fp32/cpu/1" in out
    )
    assert "status ok -> error: worker died" in out


def test_other_machine_warns_and_by_machine_groups(tmp_path, capsys):
    base = make_run(tmp_path / "a")
    other = make_run(tmp_path / "b", p50_ms=5.0, env={**ENV, "cpu_model": "Faster CPU"})
    assert main(["compare", str(base), str(other), "--by", "machine"]) == 0
    out = capsys.readouterr().out
    assert "warning: the runs come from different machines" in out
    assert "## s / unet" in out and "Test CPU (2 threads) p50 ms" in out and "Faster CPU (2 threads) p50 ms" in out
    assert "Geometric-mean latency ratio per backend" in out and "0.500" in out
    slower = make_run(tmp_path / "c", p50_ms=20.0, env={**ENV, "cpu_model": "Slower CPU"})
    assert main(["compare", str(base), str(slower), "--by", "machine"]) == 0  # hardware report: not a regression
    assert main(["compare", str(base), str(slower)]) == 1  # nightly mode: it is


@pytest.mark.parametrize(
    "make_args,message",
    [
        (lambda t: [str(t / "missing"), str(t / "base")], "run folder"),
        (lambda t: [str(make_run(t / "x", backends=("ort",))), str(t / "base")], "no rows of"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, make_args, message):
    make_run(tmp_path / "base")
    assert main(["compare", *make_args(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_rows_from_different_reference_checkpoints_are_warned_about(tmp_path, capsys):
    base = make_run(tmp_path / "a", checkpoint="aaaa")
    other = make_run(tmp_path / "b", checkpoint="bbbb")
    main(["compare", str(base), str(other), "--by", "machine"])
    out = capsys.readouterr().out
    assert out.count("different reference checkpoints (aaaa vs bbbb)") == 2  # one line per row
    assert main(["compare", str(make_run(tmp_path / "c")), str(make_run(tmp_path / "d"))]) in (0, 1)
    assert "different reference checkpoints" not in capsys.readouterr().out


def test_gradcam_divergences_are_judged_only_between_maps_of_the_same_method() -> None:
    from bench.report.compare import _quality_regressions

    base = pd.Series({"gradcam_pearson": 0.995, "gradcam_method": "fake-quant", "gradcam_status": "ok"})
    same = pd.Series({"gradcam_pearson": 0.90, "gradcam_method": "fake-quant", "gradcam_status": "ok"})
    other = pd.Series({"gradcam_pearson": 0.90, "gradcam_method": "finite-difference", "gradcam_status": "ok"})
    assert any("gradcam_pearson" in line for line in _quality_regressions("cell", base, same, 0.005))
    assert not _quality_regressions("cell", base, other, 0.005)  # a change of method is not a regression


def _set_columns(path, **columns) -> None:
    """Every row of a run folder given these columns' values."""
    table = pd.read_parquet(path / "results.parquet")
    for name, value in columns.items():
        table[name] = value
    table.to_parquet(path / "results.parquet")


BEFORE = {
    "min_class_iou_drift": -0.01,
    "bf_vs_reference": 0.95,
    "sqnr_db": 30.0,
    "gradcam_pearson@fakequant": 0.999,
    "gradcam_jsd": 0.010,
    "accuracy_nucleus_drift": -0.002,
}
AFTER = {  # each worse; the per-class one by less than its own threshold (0.01)
    "min_class_iou_drift": -0.03,
    "bf_vs_reference": 0.94,
    "sqnr_db": 28.0,
    "gradcam_pearson@fakequant": 0.99,
    "gradcam_jsd": 0.015,
    "accuracy_nucleus_drift": -0.007,
}


def test_every_declared_metric_is_judged_at_its_own_threshold(tmp_path, capsys) -> None:
    """Columns compare's hand-written lists never judged: the worst class, agreement, SQNR, fake-quant maps."""
    base, worse = make_run(tmp_path / "base"), make_run(tmp_path / "worse")
    _set_columns(base, **BEFORE)
    _set_columns(worse, **AFTER)
    regressions = compare_runs(load_run(base), load_run(worse)).regressions
    judged = {line.split(": ")[1].split(" ")[0] for line in regressions}
    assert judged == set(AFTER) - {"accuracy_nucleus_drift"}, regressions
    assert "sqnr_db 30.0000 -> 28.0000 (worse by 2.0000 > 1)" in "\n".join(regressions)
    # --quality-threshold replaces every score column's threshold; sqnr_db keeps its 1 dB
    assert main(["compare", str(base), str(worse), "--quality-threshold", "0.05"]) == 1
    found = [line for line in capsys.readouterr().out.splitlines() if "worse by" in line]
    assert len(found) == 2 and all("sqnr_db" in line for line in found), found  # one line per backend
    assert main(["compare", str(base), str(worse), "--quality-threshold", "0.001"]) == 1
    assert "accuracy_nucleus_drift" in capsys.readouterr().out


def test_by_machine_adds_each_machines_decision(tmp_path, capsys):
    """Two machines, two answers: on one the int8 cell pays, on the other it is slower than fp32 eager."""
    backends = ("torch-eager", "ort-qdq-int8")
    epyc, xeon = (
        make_run(tmp_path / "a", backends=backends),
        make_run(tmp_path / "b", backends=backends, env={**ENV, "cpu_model": "Xeon"}),
    )
    for folder, speedup in ((epyc, 0.7), (xeon, 2.0)):
        results = pd.read_parquet(folder / "results.parquet")
        results["precision"] = ["fp32", "int8"]
        results["speedup_vs_fp32"] = [1.0, speedup]
        results["speedup_vs_fp32_ci_low"], results["speedup_vs_fp32_ci_high"] = (
            [1.0, speedup * 0.97],
            [1.0, speedup * 1.03],
        )
        results["latency_p50_ms"] = [10.0, 10.0 / speedup]
        results["miou_drift"] = [0.0, -0.001]
        results.to_parquet(folder / "results.parquet")
    assert main(["compare", str(epyc), str(xeon), "--by", "machine"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("## Decision per machine") : out.index("## Regressions")]
    assert "- Test CPU (2 threads): ship torch-eager fp32" in section
    assert "ort-qdq-int8 int8: quantizing does not pay (slower than fp32 eager (0.70x [0.68, 0.72])" in section
    assert "- Xeon (2 threads): ship ort-qdq-int8 int8, 2.00x fp32 eager [1.94, 2.06]" in section
