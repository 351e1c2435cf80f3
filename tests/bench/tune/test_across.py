"""`segbench tune` and the decision: a configuration slower than fp32 is never a silent success, and
`--backend a,b` tunes each backend, then decides over the tuned configurations run together. The tunes
and the decision run are stand-ins here (tests/test_tune.py runs real tunes): what is checked is what
the command concludes from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cli import main
from bench.results.intervals import Interval
from bench.results.row import Row
from bench.results.speedup import Speedup
from bench.results.store import RunStore
from bench.run.config import RunConfig, save_run_config
from bench.tune import across, runner
from bench.tune.records import TuneOutcome

TUNE = ["tune", "--suite", "synthetic-nuclei", "--model", "unet", "--budget", "dice_drift>=-0.01", "--quiet"]


class _Part:
    def __init__(self, **columns: Any) -> None:
        self._columns = columns

    def columns(self) -> dict[str, Any]:
        return dict(self._columns)


def _slower(folder: Path) -> TuneOutcome:
    return TuneOutcome(
        folder,
        True,
        None,
        "every budget holds with 0 layer(s) in float: p50 18.74 ms, 0.70x [0.68, 0.72] fp32 eager (same group); "
        "but it is slower than fp32 eager (0.70x [0.68, 0.72]): quantizing ort-qdq-int8 does not pay here",
        slower="but it is slower than fp32 eager (0.70x [0.68, 0.72]): quantizing ort-qdq-int8 does not pay here",
        chosen={"float_layers": "", "step": 0},
    )


def test_a_tuned_configuration_slower_than_fp32_exits_1_unless_allowed(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "run_tune", lambda config, log, resume, on_folder: _slower(tmp_path))
    args = [*TUNE, "--backend", "ort-qdq-int8", "--out", str(tmp_path)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "quantizing ort-qdq-int8 does not pay here" in captured.out
    assert "no configuration both meets the budgets and beats fp32 eager (exit 1; --allow-slower" in captured.err
    assert main([*args, "--allow-slower"]) == 0


def _decision_run(root: Path, speedups: dict[str, float], drifts: dict[str, float]) -> Path:
    """A run folder of the tuned configurations with fp32 eager, ten cycles each, as run_benchmark leaves it."""
    run_dir = root / "decision-run"
    store = RunStore(run_dir)
    for backend, speedup in speedups.items():
        precision = "fp32" if backend == "torch-eager" else "int8"
        p50 = 10.0 / speedup
        parts = _Part(
            latency_p50_ms=p50,
            dice=0.9,
            dice_drift=drifts.get(backend, 0.0),
            dice_drift_ci_low=drifts.get(backend, 0.0) - 0.001,
            dice_drift_ci_high=drifts.get(backend, 0.0) + 0.001,
            timing_quality="ok",
            iou_vs_reference_background=1.0,
            iou_vs_reference_nucleus=1.0,
        )
        samples = np.repeat(np.array([p50 * (1 + 0.001 * c) for c in range(10)]) * 1e6, 3).astype(np.int64)
        rounds = np.repeat(np.arange(10), 3)
        interval = Interval(speedup * 0.98, speedup * 1.02, "order statistics 2 and 9 of 10 per-cycle ratios")
        speed = Speedup(speedup, "paired: median of 10 per-cycle p50 ratios", interval)
        row = Row("synthetic-nuclei", "unet", backend, precision, "cpu", "ok", parts=(parts,), speedup=speed)
        store.append(row, samples, None, None, rounds)

    save_run_config(RunConfig(results_root=root, budgets=("dice_drift>=-0.01",)), run_dir)
    return run_dir


def _stub_tunes(monkeypatch, tmp_path: Path, run_dir: Path, seen: list[Any]) -> None:
    def tune(config, log, on_folder, resume=None):
        layers = "head" if config.backend == "ort-qdq-int8" else ""
        return TuneOutcome(
            tmp_path / config.backend, True, None, f"{config.backend} tuned", chosen={"float_layers": layers}
        )

    def run(config, log):
        seen.append(config)
        return run_dir

    monkeypatch.setattr(across, "run_tune", tune)
    monkeypatch.setattr("bench.run.runner.run_benchmark", run)


def test_several_backends_are_tuned_then_decided_together(capsys, tmp_path, monkeypatch) -> None:
    run_dir = _decision_run(
        tmp_path, {"torch-eager": 1.0, "ort-qdq-int8": 2.5, "torch-fx-int8": 3.2}, {"torch-fx-int8": -0.05}
    )
    seen: list[RunConfig] = []
    _stub_tunes(monkeypatch, tmp_path, run_dir, seen)
    assert main([*TUNE, "--backend", "ort-qdq-int8,torch-fx-int8", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    [config] = seen  # one run of the tuned configurations, interleaved with fp32 eager, under the budgets
    assert config.backends == ("torch-eager:fp32", "ort-qdq-int8", "torch-fx-int8")
    assert config.backend_options == {"ort-qdq-int8": {"float_layers": "head"}} and config.budgets == (
        "dice_drift>=-0.01",
    )
    assert "ship ort-qdq-int8 int8, 2.50x fp32 eager" in out  # fx is faster but fails the budget
    assert "torch-fx-int8 int8: fails a budget: dice_drift>=-0.01: -0.05" in out
    assert (
        "reproduce: segbench run --suite synthetic-nuclei --model unet --backends torch-eager:fp32,ort-qdq-int8 "
        "--option ort-qdq-int8.float_layers=head"
    ) in out


def test_when_no_tuned_configuration_beats_fp32_the_tune_exits_1(capsys, tmp_path, monkeypatch) -> None:
    run_dir = _decision_run(tmp_path, {"torch-eager": 1.0, "ort-qdq-int8": 0.7, "torch-fx-int8": 0.8}, {})
    _stub_tunes(monkeypatch, tmp_path, run_dir, [])
    args = [*TUNE, "--backend", "ort-qdq-int8,torch-fx-int8", "--out", str(tmp_path)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "ship torch-eager fp32" in captured.out and "quantizing does not pay here" in captured.out
    assert "no tuned configuration meets the budgets and beats fp32 eager" in captured.err
    assert main([*args, "--allow-slower"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "ort-qdq-int8,ort-qdq-int8"], "--backend ort-qdq-int8,ort-qdq-int8: a backend is named twice"),
        (["--backend", "ort-qdq-int8,torch-fx-int8", "--calibration-sizes", "4"], "give one --backend"),
        (["--backend", "ort-qdq-int8,torch-fx-int8", "--option", "openvino-int8.preset=mixed"], "not in --backend"),
    ],
)
def test_bad_cross_backend_tunes_are_one_line_exit_2(extra, message, capsys, tmp_path) -> None:
    assert main([*TUNE, *extra, "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "results").exists()
