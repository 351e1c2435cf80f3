"""The calibration study: every (method, size, seed) draw scored once, a resumed study measures none
again, and calibration.parquet's columns as tunes have always written them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from bench.tune.calibration import calibration_study
from bench.tune.config import TuneConfig
from bench.tune.store import TuneStore
from tests.bench.tune.stand_ins import CELL_COLUMNS, Cells, StandInVariants, install

SUITE = SimpleNamespace(split_sizes={"calibration": 16})


@pytest.fixture
def cells(monkeypatch: pytest.MonkeyPatch) -> Cells:
    return install(monkeypatch)


def test_every_draw_is_scored_once_and_its_row_names_it_first(tmp_path: Path, cells: Cells) -> None:
    config = TuneConfig(
        suite="s",
        model="m",
        backend="b-int8",
        calibration_sizes=(4, 8),
        calibration_methods=("minmax", "entropy"),
        seeds=2,
    )
    log: list[str] = []
    calibration_study(config, SUITE, StandInVariants(tmp_path), TuneStore(tmp_path), log.append)  # type: ignore[arg-type]
    assert [spec.draw for spec in cells.scored] == [(4, 0), (4, 1), (8, 0), (8, 1)] * 2
    table = pd.read_parquet(tmp_path / "calibration.parquet")
    assert list(table.columns) == ["method", "size", "seed", *CELL_COLUMNS]
    assert [str(dtype) for dtype in table.dtypes[:3]] == ["str", "int64", "int64"]
    assert list(table["method"]) == ["minmax"] * 4 + ["entropy"] * 4
    assert list(table["status"]) == ["ok"] * 7 + ["error: worker died"]
    assert log[0] == "[calibration 1/8] minmax, 4 images, seed 0: ok, miou_drift -0.0200"
    assert log[-1] == "[calibration 8/8] entropy, 8 images, seed 1: error: worker died"
    cells.scored.clear()
    calibration_study(config, SUITE, StandInVariants(tmp_path), TuneStore(tmp_path), log.append)  # type: ignore[arg-type]
    assert cells.scored == []


def test_without_methods_or_sizes_the_backend_default_on_the_whole_calibration_split(
    tmp_path: Path, cells: Cells
) -> None:
    config = TuneConfig(suite="s", model="m", backend="b-int8", calibration_methods=())
    calibration_study(config, SUITE, StandInVariants(tmp_path), TuneStore(tmp_path), print)  # type: ignore[arg-type]
    [row] = TuneStore(tmp_path).rows("calibration")
    assert (row["method"], row["size"], row["seed"]) == ("default", 16, 0) and cells.scored[0].draw == (16, 0)
