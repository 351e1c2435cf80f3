"""The tune folder's tables: kept across a resume, and every variant that ended in error named."""

from pathlib import Path

from bench.tune.store import TuneStore


def test_errors_name_the_table_the_variant_and_the_status(tmp_path: Path) -> None:
    store = TuneStore(tmp_path)
    store.append("sensitivity", {"layer": "features.0", "status": "ok"})
    store.append("sensitivity", {"layer": "head", "status": "error: timed out after 1800 s"})
    store.append("calibration", {"method": "minmax", "size": 8, "seed": 1, "status": "error: worker died"})
    store.append("tuning", {"split": "tuning", "step": 2, "n_float_layers": 2, "status": "error: x"})
    store.append("peer", {"split": "tuning", "budget": "miou_drift>=-0.005", "status": "error: nncf failed"})
    expected = [
        "sensitivity layer head: error: timed out after 1800 s",
        "tuning tuning step 2 (2 layer(s) in float): error: x",
        "calibration minmax, 8 images, seed 1: error: worker died",
        "peer tuning (accuracy control): error: nncf failed",
    ]
    assert store.errors() == expected
    assert TuneStore(tmp_path).errors() == expected  # read back from the tables, as a resumed tune does
