"""The runtime's own accuracy control beside the fallback: which budget it is given, the rows it leaves in
peer.parquet (its model timed beside fp32, scored, confirmed on evaluation; or why there is none)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.tune import peer
from bench.tune.config import TuneConfig
from bench.tune.store import TuneStore
from tests.bench.tune.stand_ins import TIMED_CELL_COLUMNS, Cells, Plan, RuntimeWithout, StandInVariants, install

OWN = ["peer_options", "own_float_score", "own_quantized_score", "own_drop", "own_seconds", "own_notes"]
JUDGED = ["margin: dice_drift>=-0.009", "margin: miou_drift>=-0.015", "budgets_met"]
# peer.parquet as tunes have written it: pinned, since `segbench report` reads it back from earlier folders
PEER_COLUMNS = [
    *["split", "method", "budget", "float_layers", "n_float_layers", *OWN, "fp32_latency_p50_ms"],
    *TIMED_CELL_COLUMNS,
    *JUDGED,
]


@pytest.fixture
def cells(monkeypatch: pytest.MonkeyPatch) -> Cells:
    return install(monkeypatch)


def _config(*budgets: str) -> TuneConfig:
    return TuneConfig(suite="s", model="m", backend="openvino-int8", budgets=budgets)


def test_the_peer_takes_the_first_budget_that_is_one_metric_drop() -> None:
    assert str(peer.peer_budget(_config("gradcam_pearson>=0.9", "miou_drift>=-0.005"))) == "miou_drift>=-0.005"
    assert peer.peer_budget(_config("min_class_iou_drift>=-0.01")) is None  # a minimum over classes, not one metric
    assert peer.peer_budget(_config("miou_drift>=0.01")) is None  # a gain, not a drop


def test_its_model_is_timed_scored_and_confirmed_as_a_step(tmp_path: Path, cells: Cells) -> None:
    log: list[str] = []
    config = _config("dice_drift>=-0.009", "miou_drift>=-0.015")
    peer.accuracy_control_peer(config, StandInVariants(tmp_path), TuneStore(tmp_path), log.append)
    assert cells.worker == ["accuracy_control"]
    assert [spec.key for spec in cells.timed] == ["reference", "tuning-peer"]
    assert [spec.extra for spec in cells.scored] == ["ir=/p/m.xml,preset=mixed"]  # on the evaluation split
    table = pd.read_parquet(tmp_path / "peer.parquet")
    assert list(table.columns) == PEER_COLUMNS
    assert list(table["split"]) == ["tuning", "evaluation"] and list(table["n_float_layers"]) == [2, 2]
    assert list(table["method"]) == ["nncf.quantize_with_accuracy_control"] * 2
    assert table["budget"].iloc[1] == "dice_drift>=-0.009" and pd.isna(table["own_drop"].iloc[1])
    assert log[0].startswith("[accuracy control] b-int8, dice drop <= 0.009: 2 layer(s) in float in 12 s")
    cells.timed.clear()
    cells.scored.clear()
    peer.accuracy_control_peer(config, StandInVariants(tmp_path), TuneStore(tmp_path), log.append)  # resumed
    assert cells.timed == cells.scored == [] and cells.worker == ["accuracy_control"]


def test_a_failed_accuracy_control_is_one_error_row(tmp_path: Path, cells: Cells) -> None:
    cells.peer = False
    peer.accuracy_control_peer(_config("dice_drift>=-0.01"), StandInVariants(tmp_path), TuneStore(tmp_path), print)
    assert TuneStore(tmp_path).rows("peer") == [
        {"split": "tuning", "budget": "dice_drift>=-0.01", "status": "error: nncf failed"}
    ]
    assert cells.timed == cells.scored == []


def test_no_peer_without_the_tool_or_a_budget_it_takes(tmp_path: Path, cells: Cells) -> None:
    log: list[str] = []
    without = StandInVariants(tmp_path, plan=Plan(RuntimeWithout()))
    peer.accuracy_control_peer(_config("dice_drift>=-0.01"), without, TuneStore(tmp_path), log.append)
    assert log == []
    peer.accuracy_control_peer(_config("dice_drift>=0.01"), StandInVariants(tmp_path), TuneStore(tmp_path), log.append)
    assert log == ["accuracy control: not run (it takes one absolute drop of one metric, e.g. miou_drift>=-0.005)"]
    assert cells.worker == [] and not (tmp_path / "peer.parquet").exists()
