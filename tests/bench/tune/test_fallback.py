"""The greedy fallback's decisions, with the timed steps replaced by rows whose drift is known."""

from pathlib import Path
from typing import Any

import pytest

from bench.tune import runner
from bench.tune.config import TuneConfig
from bench.tune.store import TuneStore


class _Plan:
    name = "torch-fx-int8"


class _Variants:
    plan = _Plan()
    folder = Path("unused")


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Each step's drift improves by 0.004 per layer in float, from -0.012; timed steps are recorded."""
    timed: list[tuple[str, ...]] = []

    def fake_step(config, variants, kernel, step, layers, store, log) -> dict[str, Any]:
        timed.append(layers)
        row = {
            "split": "tuning",
            "step": step,
            "float_layers": ",".join(layers),
            "n_float_layers": len(layers),
            "miou_drift": -0.012 + 0.004 * len(layers),
            "latency_p50_ms": 10.0 + len(layers),
            "speedup_vs_fp32": 3.0,
            "model_size_bytes": 2**20,
        }
        store.append("tuning", row)
        return row

    monkeypatch.setattr(runner, "_timed_step", fake_step)
    monkeypatch.setattr(runner, "_confirm", lambda *args: None)
    monkeypatch.setattr(runner.ReferenceKernel, "measure", lambda self: 1.0)
    return timed


def _ranked(*gains: float) -> list[dict[str, Any]]:
    return [{"layer": f"l{i}", "miou_drift_gain": g, "layer_sqnr_db": 30.0} for i, g in enumerate(gains)]


def _config(budget: str, **changes: Any) -> TuneConfig:
    return TuneConfig(suite="s", model="m", backend="torch-fx-int8", budgets=(budget,), **changes)


def test_layers_go_into_float_in_order_until_the_budget_holds(tmp_path: Path, steps: list) -> None:
    outcome = runner.fallback(
        _config("miou_drift>=-0.005"),
        _Variants(),
        _ranked(0.003, 0.002, 0.001, -0.001),
        TuneStore(tmp_path),
        lambda m: None,
    )
    assert steps == [(), ("l0",), ("l1",)[:0] + ("l0", "l1")]
    assert outcome.met and outcome.option_line == "--option torch-fx-int8.float_layers=l0,l1"
    assert "2 layer(s) in float" in outcome.message


def test_no_configuration_meeting_the_budget_says_by_how_much(tmp_path: Path, steps: list) -> None:
    outcome = runner.fallback(
        _config("miou_drift>=0.0"), _Variants(), _ranked(0.003, 0.002, -0.001), TuneStore(tmp_path), lambda m: None
    )
    assert steps == [(), ("l0",), ("l0", "l1")]  # a layer that did not help alone is never tried
    assert not outcome.met and outcome.option_line is None
    assert "miou_drift>=0: -0.0040, misses by 0.0040" in outcome.message


def test_max_steps_and_a_resumed_tune_reuse_what_is_stored(tmp_path: Path, steps: list) -> None:
    store = TuneStore(tmp_path)
    store.append(
        "tuning", {"split": "tuning", "step": 0, "float_layers": "", "n_float_layers": 0, "miou_drift": -0.012}
    )
    outcome = runner.fallback(
        _config("miou_drift>=0.0", max_steps=1), _Variants(), _ranked(0.003, 0.002), TuneStore(tmp_path), lambda m: None
    )
    assert steps == [("l0",)]  # step 0 came from disk
    assert not outcome.met


def test_the_budget_met_by_the_all_int8_model_keeps_no_layer_in_float(tmp_path: Path, steps: list) -> None:
    outcome = runner.fallback(
        _config("miou_drift>=-0.02"), _Variants(), _ranked(0.003), TuneStore(tmp_path), lambda m: None
    )
    assert steps == [()] and outcome.met and outcome.option_line is None


def test_the_peer_takes_the_first_budget_that_is_one_metric_drop() -> None:
    def config(*budgets: str) -> TuneConfig:
        return TuneConfig(suite="s", model="m", backend="openvino-int8", budgets=budgets)

    assert str(runner.peer_budget(config("gradcam_pearson>=0.9", "miou_drift>=-0.005"))) == "miou_drift>=-0.005"
    assert runner.peer_budget(config("min_class_iou_drift>=-0.01")) is None  # a minimum over classes, not one metric
    assert runner.peer_budget(config("miou_drift>=0.01")) is None  # a gain, not a drop


def test_a_lower_is_better_budget_ranks_and_tries_the_layers_that_lowered_it(tmp_path: Path, steps: list) -> None:
    """gradcam_jsd: a layer helped when keeping it in float made the divergence smaller (a negative gain)."""
    rows = [
        {"layer": "worse", "gradcam_jsd_gain": 0.002, "layer_sqnr_db": 10.0},
        {"layer": "little", "gradcam_jsd_gain": -0.001, "layer_sqnr_db": 30.0},
        {"layer": "most", "gradcam_jsd_gain": -0.004, "layer_sqnr_db": 30.0},
    ]
    ranked = runner.rank_layers(rows, "gradcam_jsd")
    assert [r["layer"] for r in ranked] == ["most", "little", "worse"]
    runner.fallback(_config("gradcam_jsd<=0.0", max_steps=2), _Variants(), ranked, TuneStore(tmp_path), lambda m: None)
    assert steps == [(), ("most",), ("most", "little")]  # the layer that made it worse is never tried
    assert [r["layer"] for r in runner.rank_layers(rows[:1] + rows[2:], "miou_drift")] == ["worse", "most"]  # SQNR
