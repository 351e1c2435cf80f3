"""The rows a tune writes: each record's columns in their order (what --resume and `segbench report` read
back from a tune folder, whichever version wrote it), its gains, margins and ranking."""

from __future__ import annotations

import math
from pathlib import Path

from bench.backend import QuantLayer
from bench.results.bounds import Bound
from bench.results.speedup import Speedup
from bench.tune.records import (
    CalibrationRow,
    PeerFailure,
    PeerRow,
    RankedLayer,
    SensitivityRow,
    SensitivitySummary,
    StepRow,
    TimedScore,
    VariantScore,
    judgement,
)
from bench.tune.store import TuneStore
from tests.bench.tune.stand_ins import CELL_COLUMNS, FOUND, Outcome, Spec

BUDGETS = (Bound.parse("dice_drift>=-0.01"), Bound.parse("miou_drift>=-0.01"))
JUDGED = ["margin: dice_drift>=-0.01", "margin: miou_drift>=-0.01", "budgets_met"]
STEP = ["split", "step", "float_layers", "n_float_layers"]


def _score(*layers: str) -> VariantScore:
    return VariantScore.of(Outcome(Spec("v", layers)))


def test_a_variant_score_is_its_cell_row_as_a_run_records_it() -> None:
    speedup = Speedup(2.0, "p50 ratio")
    score = VariantScore.of(Outcome(Spec("v", ("enc.0",))), speedup)
    assert score.ok and score.status == "ok"
    assert score.columns()["speedup_vs_fp32"] == 2.0 and score.columns()["speedup_method"] == "p50 ratio"
    failed = _score("bad")
    assert not failed.ok and failed.status == "error: worker died" and "miou" not in failed.columns()


def test_a_sensitivity_row_gains_over_the_all_int8_start() -> None:
    start = _score().columns()
    layer = QuantLayer("dec.0", "ConvTranspose", "node3")
    row = SensitivityRow.measured(layer, _score("dec.0"), start, ["dice_drift", "miou"], 8.5, "")
    assert list(row.columns()) == [
        "layer",
        "module_path",
        "op_type",
        "node",
        "status",
        "layer_sqnr_db",
        "layer_sqnr_method",
        "dice_drift",
        "dice_drift_gain",
        "miou",
        "miou_gain",
        "model_size_bytes",
        "float_ops",
        "int8_ops",
        "artifact_cached",
    ]
    columns = row.columns()
    assert columns["module_path"] == "dec.0" and columns["node"] == "node3" and columns["float_ops"] == 5
    assert (
        math.isclose(columns["dice_drift_gain"], 0.003 * 1.75) and row.gain("dice_drift") == columns["dice_drift_gain"]
    )
    assert columns["layer_sqnr_method"] == "runtime numeric debugger (Backend.layer_sqnr)"
    failed = SensitivityRow.measured(layer, _score("bad"), start, ["dice_drift"], None, "layer SQNR not available: x")
    assert failed.columns()["dice_drift_gain"] is None and failed.columns()["status"] == "error: worker died"
    assert failed.columns()["layer_sqnr_method"] == "layer SQNR not available: x"
    no_start = SensitivityRow.measured(layer, _score("dec.0"), {}, ["dice_drift"], None, "")
    assert no_start.gain("dice_drift") is None and no_start.gain("miou") is None


def test_step_rows_of_each_split_have_their_own_columns() -> None:
    start = StepRow.start(_score()).columns()
    assert list(start) == [*STEP, *CELL_COLUMNS]
    assert (start["split"], start["step"], start["float_layers"], start["n_float_layers"]) == (
        "tuning-untimed",
        0,
        "",
        0,
    )
    timed = StepRow.timed(2, ("dec.0", "enc.0"), TimedScore(20.0, _score("dec.0", "enc.0")), BUDGETS).columns()
    assert list(timed) == [*STEP, "added_layer", "fp32_latency_p50_ms", *CELL_COLUMNS, *JUDGED]
    assert timed["added_layer"] == "enc.0" and timed["float_layers"] == "dec.0,enc.0" and timed["n_float_layers"] == 2
    first = StepRow.timed(0, (), TimedScore(None, _score()), BUDGETS).columns()
    assert first["added_layer"] == "" and first["fp32_latency_p50_ms"] is None
    confirmed = StepRow.confirmed(2, ("dec.0", "enc.0"), _score("dec.0", "enc.0"), BUDGETS).columns()
    assert list(confirmed) == [*STEP, *CELL_COLUMNS, *JUDGED] and confirmed["split"] == "evaluation"


def test_judgement_is_every_margin_then_whether_all_hold() -> None:
    assert judgement(BUDGETS, {"dice_drift": -0.005, "miou_drift": -0.02}) == {
        "margin: dice_drift>=-0.01": 0.005,
        "margin: miou_drift>=-0.01": -0.01,
        "budgets_met": False,
    }
    assert judgement(BUDGETS[:1], {"dice_drift": -0.01})["budgets_met"]
    assert judgement(BUDGETS[:1], {}) == {"margin: dice_drift>=-0.01": None, "budgets_met": False}  # no value: not met


def test_peer_rows_say_what_the_runtime_chose_and_how_it_measured() -> None:
    budget = BUDGETS[0]
    tuned = PeerRow.timed(FOUND, budget, TimedScore(20.0, _score("x.0", "x.1")), BUDGETS).columns()
    own = ["peer_options", "own_float_score", "own_quantized_score", "own_drop", "own_seconds", "own_notes"]
    head = ["split", "method", "budget", "float_layers", "n_float_layers"]
    assert list(tuned) == [*head, *own, "fp32_latency_p50_ms", *CELL_COLUMNS, *JUDGED]
    assert tuned["method"] == "nncf.quantize_with_accuracy_control" and tuned["budget"] == "dice_drift>=-0.01"
    assert tuned["peer_options"] == "ir=/p/m.xml,preset=mixed" and math.isclose(tuned["own_drop"], 0.005)
    confirmed = PeerRow.confirmed("nncf", budget, ("x.0", "x.1"), _score("x.0", "x.1"), BUDGETS).columns()
    assert list(confirmed) == [*head, *CELL_COLUMNS, *JUDGED] and confirmed["split"] == "evaluation"
    assert PeerFailure(budget, "nncf failed").columns() == {
        "split": "tuning",
        "budget": "dice_drift>=-0.01",
        "status": "error: nncf failed",
    }


def test_a_calibration_row_names_its_draw_first() -> None:
    row = CalibrationRow("default", 16, 1, _score()).columns()
    assert list(row) == ["method", "size", "seed", *CELL_COLUMNS] and row["size"] == 16


def test_ranked_layers_helped_most_first_then_lowest_sqnr() -> None:
    rows = [
        {"layer": "none", "layer_sqnr_db": 1.0},
        {"layer": "little", "miou_drift_gain": 0.001, "layer_sqnr_db": 30.0},
        {"layer": "most", "miou_drift_gain": 0.004, "layer_sqnr_db": float("nan")},
        {"layer": "tie", "miou_drift_gain": 0.001, "layer_sqnr_db": 10.0},
        {"layer": "hurt", "miou_drift_gain": -0.002, "layer_sqnr_db": 5.0},
    ]
    ranked = sorted((RankedLayer.of(row, "miou_drift") for row in rows), key=RankedLayer.rank)
    assert [r.layer for r in ranked] == ["most", "tie", "little", "hurt", "none"]
    assert [r.helped for r in ranked] == [True, True, True, False, False]
    assert ranked[0].sqnr_db is None and ranked[-1].improvement is None
    jsd = RankedLayer.of({"layer": "a", "gradcam_jsd_gain": -0.003}, "gradcam_jsd")  # lower is better
    assert jsd.improvement == 0.003 and jsd.helped


def test_sensitivity_summary_keys() -> None:
    summary = SensitivitySummary(0.5, "miou_drift", 4, 3, "")
    assert summary.to_json() == {
        "spearman_sqnr_vs_metric": 0.5,
        "metric": "miou_drift",
        "layers": 4,
        "measured": 3,
        "sqnr_note": "",
    }


def test_rows_read_back_from_the_store_as_written(tmp_path: Path) -> None:
    """--resume reads the tables: a record's row comes back with its columns and values."""
    written = StepRow.timed(1, ("dec.0",), TimedScore(20.0, _score("dec.0")), BUDGETS).columns()
    TuneStore(tmp_path).append("tuning", written)
    [read] = TuneStore(tmp_path).rows("tuning")
    assert list(read) == list(written)
    assert (
        read["float_layers"] == "dec.0"
        and read["fp32_latency_p50_ms"] == 20.0
        and read["budgets_met"] == bool(written["budgets_met"])
    )
