"""The greedy fallback's decisions, with the timed steps replaced by rows whose drift is known; and the
rows it writes, with stand-in cells, column by column as tunes have always written them."""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.measure.reference_kernel import ReferenceKernel
from bench.tune import fallback
from bench.tune.config import TuneConfig
from bench.tune.records import RankedLayer
from bench.tune.sensitivity import rank_layers, sensitivity
from bench.tune.store import TuneStore
from tests.bench.tune.stand_ins import StandInVariants, install


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

    monkeypatch.setattr(fallback, "_timed_step", fake_step)
    monkeypatch.setattr(fallback, "_confirm", lambda *args: None)
    monkeypatch.setattr(ReferenceKernel, "measure", lambda self: 1.0)
    return timed


def _ranked(*gains: float) -> list[RankedLayer]:
    return [RankedLayer(f"l{i}", g, 30.0) for i, g in enumerate(gains)]


def _config(budget: str, **changes: Any) -> TuneConfig:
    return TuneConfig(suite="s", model="m", backend="torch-fx-int8", budgets=(budget,), **changes)


def test_layers_go_into_float_in_order_until_the_budget_holds(tmp_path: Path, steps: list) -> None:
    outcome = fallback.fallback(
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
    outcome = fallback.fallback(
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
    outcome = fallback.fallback(
        _config("miou_drift>=0.0", max_steps=1), _Variants(), _ranked(0.003, 0.002), TuneStore(tmp_path), lambda m: None
    )
    assert steps == [("l0",)]  # step 0 came from disk
    assert not outcome.met


def test_the_budget_met_by_the_all_int8_model_keeps_no_layer_in_float(tmp_path: Path, steps: list) -> None:
    outcome = fallback.fallback(
        _config("miou_drift>=-0.02"), _Variants(), _ranked(0.003), TuneStore(tmp_path), lambda m: None
    )
    assert steps == [()] and outcome.met and outcome.option_line is None


def test_a_lower_is_better_budget_ranks_and_tries_the_layers_that_lowered_it(tmp_path: Path, steps: list) -> None:
    """gradcam_jsd: a layer helped when keeping it in float made the divergence smaller (a negative gain)."""
    rows = [
        {"layer": "worse", "gradcam_jsd_gain": 0.002, "layer_sqnr_db": 10.0},
        {"layer": "little", "gradcam_jsd_gain": -0.001, "layer_sqnr_db": 30.0},
        {"layer": "most", "gradcam_jsd_gain": -0.004, "layer_sqnr_db": 30.0},
    ]
    ranked = rank_layers(rows, "gradcam_jsd")
    assert [r.layer for r in ranked] == ["most", "little", "worse"]
    fallback.fallback(
        _config("gradcam_jsd<=0.0", max_steps=2), _Variants(), ranked, TuneStore(tmp_path), lambda m: None
    )
    assert steps == [(), ("most",), ("most", "little")]  # the layer that made it worse is never tried
    assert [r.layer for r in rank_layers(rows[:1] + rows[2:], "miou_drift")] == ["worse", "most"]  # SQNR


# tuning.parquet as tunes have written it (the all-int8 start, two timed steps, two confirmed on evaluation;
# budgets dice_drift, miou_drift), with the stand-in cells' own columns in the middle: pinned, since --resume
# and `segbench report` read these columns back from folders written by earlier versions
TUNING_COLUMNS = [
    *["split", "step", "float_layers", "n_float_layers", "suite", "model", "backend", "precision", "device"],
    *["status", "batch_size", "threads", "checkpoint_digest", "model_size_bytes", "int8_ops", "float_ops"],
    *["artifact_cached", "evaluation_status", "miou", "dice", "mean_bf_score", "pixel_agreement", "miou_drift"],
    *["dice_drift", "min_class_iou_drift", "sqnr_db", "speedup_vs_fp32", "speedup_method", "duration_s", "notes"],
    *["options", "added_layer", "fp32_latency_p50_ms", "latency_p50_ms", "timing_quality", "speedup_vs_fp32_ci_low"],
    *["speedup_vs_fp32_ci_high", "speedup_ci_method", "margin: dice_drift>=-0.009", "margin: miou_drift>=-0.015"],
    "budgets_met",
]
TUNING_DTYPES = [
    *["str", "int64", "str", "int64", "str", "str", "str", "str", "str", "str", "int64", "int64", "str", "int64"],
    *["int64", "int64", "bool", "str", "float64", "float64", "float64", "float64", "float64", "float64", "float64"],
    *["float64", "float64", "str", "float64", "str", "str", "str", "float64", "float64", "str", "float64"],
    *["float64", "str", "float64", "float64", "object"],
]


def test_the_rows_a_fallback_writes_keep_their_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = install(monkeypatch)
    config = TuneConfig(suite="s", model="m", backend="b-int8", budgets=("dice_drift>=-0.009", "miou_drift>=-0.015"))
    variants, log = StandInVariants(tmp_path), []
    ranked = sensitivity(config, variants, TuneStore(tmp_path), log.append)
    outcome = fallback.fallback(config, variants, ranked, TuneStore(tmp_path), log.append)
    assert outcome.met and outcome.option_line == "--option b-int8.float_layers=dec.0,enc.0"
    assert outcome.message == (
        "every budget holds with 2 layer(s) in float: p50 12.00 ms, 1.67x [1.67, 1.67] fp32 eager (same group), "
        "0.00 MiB"
    )
    assert [spec.layers for spec in cells.timed[1::2]] == [(), ("dec.0",), ("dec.0", "enc.0")]  # beside fp32 each
    assert {spec.key for spec in cells.timed[::2]} == {"reference"}
    table = pd.read_parquet(tmp_path / "tuning.parquet")
    assert list(table.columns) == TUNING_COLUMNS
    assert [str(dtype) for dtype in table.dtypes] == TUNING_DTYPES
    assert list(zip(table["split"], table["step"])) == [
        ("tuning-untimed", 0),
        ("tuning", 0),
        ("tuning", 1),
        ("tuning", 2),
        ("evaluation", 0),
        ("evaluation", 2),
    ]
    assert list(table["added_layer"].fillna("-")) == ["-", "", "dec.0", "enc.0", "-", "-"]
    assert list(table["budgets_met"]) == [None, False, False, True, False, True]
    assert outcome.chosen == TuneStore(tmp_path).rows("tuning")[3]
    assert (
        "[step 2] 2 layer(s) in float, + enc.0: ok, p50 12.00 ms, dice_drift -0.0060, miou_drift -0.0080, "
        "budgets met" in log
    )
    assert "[confirm step 2] evaluation split: ok, dice_drift -0.0060, miou_drift -0.0080" in log
    cells.timed.clear()
    cells.scored.clear()
    again = fallback.fallback(config, variants, ranked, TuneStore(tmp_path), log.append)  # a resumed tune
    assert cells.timed == cells.scored == [] and again.option_line == outcome.option_line
