"""The report of a tune folder, from hand-made tables: the most sensitive layers first (by the first
budget's column, in its own direction), the greedy path with its sizes in MiB, segbench's choice beside the
runtime's accuracy control, the calibration study's spread over seeds, and the two report files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.report.tuning import calibration_table, path_table, peer_table, sensitivity_table, write_tune_reports

MIB = 2**20


def _config(column: str = "miou_drift", bound: float = -0.01) -> dict[str, Any]:
    text = f"{column}>={bound}"
    return {"budget_lines": [[column, ">=", bound, text]], "budgets": [text], "suite_name": "toy", "model": "unet"}


def _sensitivity() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": ["enc.0", "enc.1", "head", "dec.0"],
            "op_type": ["Conv"] * 4,
            "status": ["ok", "ok", "ok", "error: worker died"],
            "miou_drift_gain": [0.01, 0.05, 0.02, 0.90],
            "gradcam_jsd_gain": [-0.02, 0.01, -0.05, -0.90],
            "miou_drift": [-0.02, 0.0, -0.01, 0.0],
            "skipped_column": [1, 2, 3, 4],
        }
    )


def _tuning() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "split": ["tuning", "tuning", "tuning", "evaluation", "calibration"],
            "step": [0, 1, 2, 2, 0],
            "n_float_layers": [0, 1, 2, 2, 0],
            "model_size_bytes": [1 * MIB, 2 * MIB, 3 * MIB, 3 * MIB, 0],
            "miou_drift": [-0.03, -0.008, -0.004, -0.005, 0.0],
            "budgets_met": [False, True, True, True, False],
            "status": ["ok"] * 5,
        }
    )


def test_the_most_sensitive_ok_layers_come_first_in_the_budgets_direction():
    table = sensitivity_table(_sensitivity(), _config())
    assert table["layer"].tolist() == ["enc.1", "head", "enc.0"]  # a failed layer is left out
    assert table.columns.tolist() == ["layer", "op_type", "miou_drift_gain", "miou_drift"]
    lower_is_better = sensitivity_table(_sensitivity(), _config("gradcam_jsd", 0.1))
    assert lower_is_better["layer"].tolist() == ["head", "enc.0", "enc.1"]  # the most negative gain helped most
    assert sensitivity_table(pd.DataFrame(), _config()).empty


def test_the_path_lists_tuning_steps_then_the_evaluation_split_with_sizes_in_mib():
    table = path_table(_tuning(), _config())
    assert list(zip(table["split"], table["step"])) == [("tuning", 0), ("tuning", 1), ("tuning", 2), ("evaluation", 2)]
    assert table["model_size_MiB"].tolist() == [1.0, 2.0, 3.0, 3.0] and "model_size_bytes" not in table
    assert table.columns.tolist()[:4] == ["split", "step", "n_float_layers", "miou_drift"]


def test_segbench_picks_its_last_step_that_met_the_budgets_beside_the_runtimes_own():
    tuning = _tuning()
    tuning.loc[2, "budgets_met"] = False  # the last tuning step misses: step 1 is the choice
    peer = pd.DataFrame(
        {
            "method": ["accuracy control"],
            "split": ["tuning"],
            "n_float_layers": [4],
            "own_drop": [0.003],
            "status": ["ok"],
        }
    )
    table = peer_table(tuning, peer, _config())
    assert table["method"].tolist() == ["segbench greedy fallback", "accuracy control", "segbench greedy fallback"]
    assert table["split"].tolist() == ["tuning", "tuning", "evaluation"]
    assert table["n_float_layers"].tolist() == [1, 4, 2] and table["model_size_MiB"].tolist()[0] == 2.0
    assert peer_table(tuning, pd.DataFrame(), _config()).empty  # no peer: no table


def test_the_calibration_study_is_the_mean_and_spread_over_seeds_of_ok_runs():
    calibration = pd.DataFrame(
        {
            "method": ["minmax", "minmax", "minmax", "entropy"],
            "size": [8, 8, 8, 8],
            "seed": [0, 1, 2, 0],
            "miou_drift": [-0.01, -0.03, 0.5, -0.02],
            "status": ["ok", "ok", "error: worker died", "ok"],
        }
    )
    table = calibration_table(calibration, "miou_drift").set_index("method")
    assert table.loc["minmax", "seeds"] == 2 and table.loc["minmax", "mean"] == pytest.approx(-0.02)
    assert table.loc["minmax", "std"] == pytest.approx(0.0141421, rel=1e-5)  # sample std of -0.01, -0.03
    assert (table.loc["minmax", "min"], table.loc["minmax", "max"]) == (-0.03, -0.01)
    assert table.loc["entropy", "seeds"] == 1 and pd.isna(table.loc["entropy", "std"])
    assert calibration_table(calibration, "dice_drift").empty


def test_both_reports_hold_the_sections_that_have_a_table(tmp_path: Path):
    folder = tmp_path / "tune-1"
    folder.mkdir()
    config = {**_config(), "backend": "ort-qdq-int8"}
    written = write_tune_reports(folder, _sensitivity(), pd.DataFrame(), pd.DataFrame(), config)
    assert written == [folder / "report.md", folder / "report.html"]  # no path, no calibration: no figures
    md = (folder / "report.md").read_text()
    assert md.startswith("# segbench tune tune-1: toy / unet / ort-qdq-int8\n\nBudgets: miou_drift>=-0.01\n")
    assert "## Sensitivity: each layer alone in float (tuning split)" in md and "| enc.1 " in md
    assert "## Greedy fallback" not in md and "## Calibration" not in md
    page = (folder / "report.html").read_text()
    assert "<h1>segbench tune tune-1: toy / unet / ort-qdq-int8</h1>" in page and "<td>enc.1</td>" in page
