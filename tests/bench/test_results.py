import numpy as np
import pandas as pd
import pytest

from bench.results import Row, RunStore, add_speedup, update_latest


def _row(backend: str, precision: str, p50: float | None, status: str = "ok") -> Row:
    return Row(suite="s", model="m", backend=backend, precision=precision, device="cpu", status=status,
               latency_p50_ms=p50, per_class={"iou_a": 0.5})


def test_each_appended_row_is_on_disk_at_once(tmp_path):
    store = RunStore(tmp_path)
    store.append(_row("torch-eager", "fp32", 10.0), np.array([1, 2, 3]))
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 1
    store.append(_row("ort-qdq-int8", "int8", 4.0))
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table.backend) == ["torch-eager", "ort-qdq-int8"]
    assert "iou_a" in table.columns
    assert len(pd.read_parquet(tmp_path / "samples.parquet")) == 3


def test_speedup_is_a_ratio_to_fp32_eager_in_the_same_run():
    df = add_speedup(pd.DataFrame([_row("torch-eager", "fp32", 10.0).record(), _row("ort-qdq-int8", "int8", 4.0).record(),
                                   _row("x", "int8", None, "unavailable: no").record()]))
    assert df.speedup_vs_fp32.iloc[0] == pytest.approx(1.0)
    assert df.speedup_vs_fp32.iloc[1] == pytest.approx(2.5)
    assert np.isnan(df.speedup_vs_fp32.iloc[2])


def test_latest_points_at_newest_run(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        update_latest(tmp_path, tmp_path / name)
    assert (tmp_path / "latest").resolve() == (tmp_path / "b").resolve()
