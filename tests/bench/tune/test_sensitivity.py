"""Each layer alone in float: in the SQNR proxy's order, every layer once (a resumed tune measures none
again), the rows' columns as a tune has always written them, and the ranking the fallback takes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.tune import sensitivity
from bench.tune.config import TuneConfig
from bench.tune.records import RankedLayer
from bench.tune.store import TuneStore
from tests.bench.tune.stand_ins import CELL_COLUMNS, Cells, StandInVariants, install

# sensitivity.parquet as tunes have written it (budgets dice_drift, miou_drift): pinned, since --resume and
# `segbench report` read these columns back from folders written by earlier versions
SENSITIVITY_COLUMNS = [
    "layer",
    "module_path",
    "op_type",
    "node",
    "status",
    "layer_sqnr_db",
    "layer_sqnr_method",
    "dice_drift",
    "dice_drift_gain",
    "miou_drift",
    "miou_drift_gain",
    "miou",
    "miou_gain",
    "dice",
    "dice_gain",
    "mean_bf_score",
    "mean_bf_score_gain",
    "pixel_agreement",
    "pixel_agreement_gain",
    "min_class_iou_drift",
    "min_class_iou_drift_gain",
    "sqnr_db",
    "sqnr_db_gain",
    "model_size_bytes",
    "float_ops",
    "int8_ops",
    "artifact_cached",
]
SENSITIVITY_DTYPES = ["str"] * 5 + ["float64", "str"] + ["float64"] * 19 + ["object"]


@pytest.fixture
def cells(monkeypatch: pytest.MonkeyPatch) -> Cells:
    return install(monkeypatch)


def _config(*budgets: str, **changes: object) -> TuneConfig:
    return TuneConfig(suite="s", model="m", backend="b-int8", budgets=budgets, **changes)  # type: ignore[arg-type]


def _run(tmp_path: Path, config: TuneConfig, log: list[str] | None = None) -> list[RankedLayer]:
    return sensitivity.sensitivity(
        config, StandInVariants(tmp_path), TuneStore(tmp_path), (log if log is not None else []).append
    )


def test_layers_are_measured_lowest_sqnr_first_and_ranked_by_their_gain(tmp_path: Path, cells: Cells) -> None:
    log: list[str] = []
    ranked = _run(tmp_path, _config("dice_drift>=-0.009", "miou_drift>=-0.015"), log)
    assert [spec.layers for spec in cells.scored] == [(), ("dec.0",), ("enc.0",), ("enc.1",), ("bad",)]
    assert [(r.layer, r.helped) for r in ranked] == [("dec.0", True), ("enc.0", True), ("enc.1", False)]
    table = pd.read_parquet(tmp_path / "sensitivity.parquet")
    assert list(table.columns) == SENSITIVITY_COLUMNS
    assert [str(dtype) for dtype in table.dtypes] == SENSITIVITY_DTYPES
    assert list(table["status"]) == ["ok", "ok", "ok", "error: worker died"]
    assert table["dice_drift_gain"].iloc[0] == pytest.approx(0.003 * 1.75) and pd.isna(table["dice_drift_gain"].iloc[3])
    [start] = TuneStore(tmp_path).rows("tuning")
    assert list(start) == ["split", "step", "float_layers", "n_float_layers", *CELL_COLUMNS]
    assert start["split"] == "tuning-untimed"
    summary = json.loads((tmp_path / "sensitivity.json").read_text())
    assert summary == {
        "spearman_sqnr_vs_metric": pytest.approx(1.0),
        "metric": "dice_drift",
        "layers": 4,
        "measured": 3,
        "sqnr_note": "",
    }
    assert "[layer 1/4] dec.0: ok, dice_drift gain +0.0053" in log and "[layer 4/4] bad: error: worker died" in log


def test_a_resumed_tune_measures_no_layer_again_and_max_layers_keeps_the_suspects(tmp_path: Path, cells: Cells) -> None:
    config = _config("miou_drift>=-0.01", max_layers=2)
    _run(tmp_path, config)
    assert [spec.layers for spec in cells.scored] == [(), ("dec.0",), ("enc.0",)]
    cells.scored.clear()
    ranked = _run(tmp_path, config)
    assert cells.scored == [] and [r.layer for r in ranked] == ["dec.0", "enc.0"]


def test_without_a_numeric_debugger_every_row_says_why(tmp_path: Path, cells: Cells) -> None:
    cells.sqnr = False
    log: list[str] = []
    _run(tmp_path, _config("dice_drift>=-0.01"), log)
    table = pd.read_parquet(tmp_path / "sensitivity.parquet")
    assert set(table["layer_sqnr_method"]) == {"layer SQNR not available: no debugger here"}
    assert table["layer_sqnr_db"].isna().all() and list(table["layer"]) == ["enc.0", "bad", "enc.1", "dec.0"]
    assert log[0] == "layer SQNR not available: no debugger here"
    assert json.loads((tmp_path / "sensitivity.json").read_text())["spearman_sqnr_vs_metric"] is None


def test_a_tune_without_layers_fails_in_one_line(tmp_path: Path, cells: Cells) -> None:
    cells.layers = []
    with pytest.raises(sensitivity.TuneFailed, match="listed no quantizable layer of 'm'"):
        _run(tmp_path, _config("dice_drift>=-0.01"))


def test_rank_agreement_needs_three_layers_with_both_numbers() -> None:
    rows = [{"layer_sqnr_db": s, "miou_drift_gain": g} for s, g in [(5.0, 0.03), (10.0, 0.02), (20.0, 0.01)]]
    assert sensitivity.rank_agreement(rows, "miou_drift") == pytest.approx(1.0)
    assert (
        sensitivity.rank_agreement([*rows[:2], {"layer_sqnr_db": None, "miou_drift_gain": 0.0}], "miou_drift") is None
    )
    reversed_rows = [{**row, "miou_drift_gain": -row["miou_drift_gain"]} for row in rows]
    assert sensitivity.rank_agreement(reversed_rows, "miou_drift") == pytest.approx(-1.0)
