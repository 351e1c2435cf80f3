"""A small matrix run whole, and as shards 1/2 and 2/2 merged back: the same cells, statuses and quality."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.results.columns import between_runs
from bench.results.row import cell_id
from tests.bench.models.byo_fixture import TinyNet
from tests.bench.test_backend import PLUGIN
from tests.helpers import segbench_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tests.bench.models.byo_fixture:tiny_net"


def _suites(folder: Path) -> str:
    """Two copies of the nuclei suite under other names: two comparison groups, no training (--weights)."""
    text = (ROOT / "suites" / "synthetic-nuclei.toml").read_text()
    paths = []
    for name in ("nuclei-a", "nuclei-b"):
        path = folder / f"{name}.toml"
        path.write_text(text.replace('name = "synthetic-nuclei"', f'name = "{name}"'))
        paths.append(str(path))
    return ",".join(paths)


def _quality_columns(table: pd.DataFrame) -> list[str]:
    return [*between_runs(table.columns), "checkpoint_digest"]


def test_shards_merged_back_equal_the_whole_run(session_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT)]), "SEGBENCH_CACHE": str(session_cache)}
    args = ["run", "--suite", _suites(tmp_path), "--models", MODEL, "--weights", str(tmp_path / "weights.pt")]
    args += ["--backends", "torch-eager,dummy-threshold", "--no-gradcam", "--threads", "1", "--min-time", "0.2"]
    args += ["--min-iters", "5", "--warmup", "0.05", "--split", "train=8", "--split", "evaluation=8"]

    def run(out: str, *extra: str) -> str:
        process = segbench_process([*args, "--out", str(tmp_path / out), *extra], env, cwd=ROOT)
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        return err

    run("whole")
    notes = [run(f"shard-{k}", "--shard", f"{k}/2") for k in (1, 2)]
    for k, err in zip((1, 2), notes):
        assert f"shard {k}/2: 1 of the matrix's 2 comparison group(s)" in err
        shard_dir = tmp_path / f"shard-{k}" / "latest"
        assert json.loads((shard_dir / "run.json").read_text())["shard"] == {"index": k, "count": 2}
        assert json.loads((shard_dir / "env.json").read_text())["shard"]["index"] == k
        assert f"- Shard {k} of 2: 1 of the matrix's 2 comparison groups" in (shard_dir / "report.md").read_text()
        # the whole run prepared every artifact: the shard's own process finds them, with no worker to start
        assert pd.read_parquet(shard_dir / "results.parquet")["artifact_cached"].all()
        assert ": calibrate" not in err and ": load" in err

    merged = tmp_path / "merged"
    assert (
        main(
            ["merge", str(tmp_path / "shard-1" / "latest"), str(tmp_path / "shard-2" / "latest"), "--out", str(merged)]
        )
        == 0
    )
    whole = pd.read_parquet(tmp_path / "whole" / "latest" / "results.parquet")
    joined = pd.read_parquet(merged / "results.parquet")
    shards = [pd.read_parquet(tmp_path / f"shard-{k}" / "latest" / "results.parquet") for k in (1, 2)]
    assert sorted(len(shard) for shard in shards) == [2, 2]  # one whole group (2 backends) each
    by_cell = {cell_id(r): r for r in whole.to_dict("records")}
    assert sorted(cell_id(r) for r in joined.to_dict("records")) == sorted(by_cell) and len(joined) == 4
    columns = _quality_columns(whole)
    assert {"dice", "miou", "dice_drift", "pixel_agreement"} <= set(columns)
    ordered = joined.set_index(joined.apply(cell_id, axis=1)).loc[list(by_cell)]
    assert (ordered["status"] == "ok").all() and ordered["status"].tolist() == whole["status"].tolist()
    pd.testing.assert_frame_equal(  # dice and the rest are deterministic; latencies are not compared
        ordered[columns].reset_index(drop=True), whole[columns].reset_index(drop=True), check_dtype=False
    )
    assert (ordered["speedup_vs_fp32"] > 0).all()  # each group kept its fp32 reference: a same-run ratio
    assert set(joined["shard"]) == {"1/2", "2/2"} and joined["hostname"].notna().all()
    assert len(pd.read_parquet(merged / "samples.parquet").groupby(["suite", "backend"])) == 4
