"""Every numeric column a real run writes is declared (bench/results/columns.py): judged with a direction,
or marked informational. A metric added without a declaration would be silently unjudged by compare,
history, budgets and --fail-on; this is where that fails."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.measure.timing import TimingConfig
from bench.results.columns import column, undeclared
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.bench.models.byo_fixture import TinyNet

pytestmark = pytest.mark.slow


def numeric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])]


def test_every_numeric_column_of_a_small_real_run_is_declared(session_cache: Path, tmp_path: Path) -> None:
    """fp32, ONNX and int8 rows with both Grad-CAM methods at two layers and a profiled pass: the records'
    every column family (latency, memory, size, quality per class, drift, SQNR, Grad-CAM @fakequant and
    @layer, profile)."""
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    config = RunConfig(
        models=("tests.bench.models.byo_fixture:tiny_net",),
        weights=tmp_path / "weights.pt",
        backends=("torch-eager", "ort", "ort-qdq-int8"),
        results_root=tmp_path / "results",
        threads=1,
        progress=False,
        gradcam_layers=("features", "features.0"),
        splits={"train": 8, "evaluation": 8},
        timing=TimingConfig(warmup_s=0.05, min_time_s=0.2, min_iters=5),
        profile=True,
        profile_calls=3,
    )
    table = pd.read_parquet(run_benchmark(config, log=lambda message: None) / "results.parquet")
    assert (table.status == "ok").all(), table.status.tolist()
    numeric = numeric_columns(table)
    for family in ("gradcam_pearson@fakequant", "gradcam_pearson@features.0", "iou_nucleus_drift", "profile_calls"):
        assert family in numeric, family  # the run really wrote what this test means to walk
    assert undeclared(numeric) == []
    judged = {c for c in numeric if (declared := column(c)) is not None and declared.judged}
    assert {"min_class_iou_drift", "sqnr_db", "bf_vs_reference", "gradcam_jsd@fakequant"} <= judged


def test_every_numeric_column_of_the_default_run_is_declared(default_run) -> None:
    _, table = default_run
    assert undeclared(numeric_columns(table)) == []
