import numpy as np
import pandas as pd

from bench.results.row import Row
from bench.results.store import RunStore, update_latest


class Part:
    """A stage record standing in for the real ones: it fills the columns it is given."""

    def __init__(self, **columns):
        self._columns = columns

    def columns(self):
        return dict(self._columns)


def _row(backend: str, precision: str, p50: float | None, status: str = "ok") -> Row:
    parts = (Part(latency_p50_ms=p50), Part(iou_a=0.5)) if status == "ok" else ()
    return Row(suite="s", model="m", backend=backend, precision=precision, device="cpu", status=status, parts=parts)


def test_each_appended_row_is_on_disk_at_once(tmp_path):
    store = RunStore(tmp_path)
    store.append(_row("torch-eager", "fp32", 10.0), np.array([1, 2, 3]))
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 1
    store.append(_row("ort-qdq-int8", "int8", 4.0))
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table.backend) == ["torch-eager", "ort-qdq-int8"]
    assert "iou_a" in table.columns
    assert len(pd.read_parquet(tmp_path / "samples.parquet")) == 3


def test_a_row_that_is_not_ok_has_no_numbers():
    record = _row("x", "int8", None, "error: boom").record()
    assert record["status"] == "error: boom" and "latency_p50_ms" not in record and record["speedup_vs_fp32"] is None


def test_a_resumed_store_has_the_earlier_rows(tmp_path):
    RunStore(tmp_path).append(_row("torch-eager", "fp32", 10.0))
    resumed = RunStore(tmp_path)
    assert resumed.finished_cells() == {"s/m/torch-eager/fp32/cpu/1"}
    assert resumed.rows()[0]["latency_p50_ms"] == 10.0


def test_latest_points_at_newest_run(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        update_latest(tmp_path, tmp_path / name)
    assert (tmp_path / "latest").resolve() == (tmp_path / "b").resolve()


def test_profile_rows_carry_the_cell_identity_and_survive_resume_forget_and_absorb(tmp_path):
    ops = [{"name": "conv", "layer": "enc.0", "total_us": 10.0}, {"name": "relu", "layer": "", "total_us": 1.0}]
    store = RunStore(tmp_path / "a")
    store.append(_row("torch-eager", "fp32", 10.0), profile_records=ops)
    store.append(_row("ort", "fp32", 8.0), profile_records=ops[:1])
    table = pd.read_parquet(tmp_path / "a" / "profile.parquet")
    assert list(table.backend) == ["torch-eager", "torch-eager", "ort"]
    assert set(table.columns) >= {"suite", "model", "precision", "device", "batch_size", "threads", "layer"}
    resumed = RunStore(tmp_path / "a")
    resumed.forget({"s/m/ort/fp32/cpu/1"})
    assert list(pd.read_parquet(tmp_path / "a" / "profile.parquet").backend) == ["torch-eager"] * 2
    merged = RunStore(tmp_path / "b")
    merged.absorb(tmp_path / "a", {"node": "n1"})
    assert len(pd.read_parquet(tmp_path / "b" / "profile.parquet")) == 2


def test_every_table_and_env_json_carry_the_schema_version(tmp_path):
    import json

    import pyarrow.parquet as pq

    from bench.results.files import PARQUET_VERSION_KEY, SCHEMA_VERSION

    store = RunStore(tmp_path)
    store.write_env({"schema_version": 0, "threads": 2})  # a merged input's version is not kept
    store.append(
        _row("torch-eager", "fp32", 10.0),
        np.array([1, 2, 3]),
        per_image_dice=np.array([0.9, 0.8]),
        gradcam_records=[{"layer": "l", "pearson": 0.9}],
        profile_records=[{"op": "conv", "ms": 1.0}],
        round_records=[{"round": 0, "ms": 1.0}],
    )
    tables = sorted(tmp_path.glob("*.parquet"))
    assert [p.stem for p in tables] == ["gradcam", "per_image", "profile", "results", "rounds", "samples"]
    for path in tables:
        assert pq.read_schema(path).metadata[PARQUET_VERSION_KEY] == str(SCHEMA_VERSION).encode(), path
        assert b"pandas" in pq.read_schema(path).metadata  # otherwise the file pandas would write
    assert json.loads((tmp_path / "env.json").read_text()) == {"schema_version": SCHEMA_VERSION, "threads": 2}
    assert list(RunStore(tmp_path).table().backend) == ["torch-eager"]  # and it reads back
