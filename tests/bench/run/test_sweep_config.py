"""--input-sizes and --batch-sizes: each shape its own comparison group, the suite's own size first, every
size checked against every model before anything is written, the sweep kept for a resume, and rows of
runs from before sweeps keeping their identity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.errors import UsageError
from bench.results.files import read_results
from bench.results.row import cell_id
from bench.results.speedup import GROUP_COLUMNS
from bench.run.config import RunConfig, load_run_config, parse_input_size, save_run_config
from bench.run.matrix import plan_backends
from bench.run.runner import plan_cells, plan_matrix


def _cells(config: RunConfig, tmp_path: Path):
    checkpoint, reference = tmp_path / "model.pt", tmp_path / "reference.npy"
    checkpoint.write_bytes(b"weights")
    plans = plan_backends(config.backend_specs(), {}, "cpu")
    return plan_cells(config, plans, {("synthetic-nuclei", "unet"): (checkpoint, reference)}, {}, tmp_path), plans


def test_sizes_parse_as_height_by_width() -> None:
    assert parse_input_size("512x1024") == (512, 1024)
    assert parse_input_size(" 64X32 ") == (64, 32)
    for bad in ("512", "512x", "x512", "0x64", "-64x64", "64x64x3", "ax b"):
        with pytest.raises(ValueError, match="is not a size HxW"):
            parse_input_size(bad)


def test_every_shape_is_a_group_and_the_suites_own_size_comes_first(tmp_path: Path) -> None:
    """synthetic-nuclei is 128x128: given 256x256 and 128x128, the own size is measured first, once, as
    the ordinary rows (empty input_size), and Grad-CAM only there."""
    config = RunConfig(backends=("torch-eager", "ort"), input_sizes=((256, 256), (128, 128)), batch_sizes=(1, 4))
    cells, plans = _cells(config, tmp_path)
    shapes = [(spec.swept_size, spec.batch_size) for spec, _ in cells]
    assert shapes == [("", 1), ("", 1), ("", 4), ("", 4), ("256x256", 1), ("256x256", 1), ("256x256", 4)] + [
        ("256x256", 4)
    ]
    assert len({spec.key for spec, _ in cells}) == 8 and len({spec.group() for spec, _ in cells}) == 4
    assert all(spec.gradcam == (spec.input_size is None) for spec, _ in cells)
    assert all(spec.suite_size == (128, 128) for spec, _ in cells)
    assert len({spec.log_file for spec, _ in cells}) == 8 and len({spec.profile_dir for spec, _ in cells}) == 8
    swept = next(spec for spec, _ in cells if spec.input_size is not None)
    assert swept.load_suite().input_size == (256, 256)
    matrix = plan_matrix(config, plans)
    assert list(matrix) == [spec.group() for spec, _ in cells[::2]]
    assert [key for keys in matrix.values() for key in keys] == [spec.key for spec, _ in cells]


def test_a_run_without_a_sweep_keeps_its_cells_and_run_json(tmp_path: Path) -> None:
    config = RunConfig(backends=("torch-eager",), batch_size=2)
    ((spec, _),), _ = _cells(config, tmp_path)
    assert spec.key == "synthetic-nuclei/unet/torch-eager/fp32/cpu/2" and spec.group()[-1] == ""
    save_run_config(config, tmp_path)
    assert "input_sizes" not in (tmp_path / "run.json").read_text()


def test_the_sweep_survives_a_resume(tmp_path: Path) -> None:
    save_run_config(RunConfig(input_sizes=((64, 96),), batch_sizes=(2, 8)), tmp_path)
    resumed = load_run_config(tmp_path)
    assert resumed.input_sizes == ((64, 96),) and resumed.batch_sizes == (2, 8)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (RunConfig(models=("unet",), input_sizes=((100, 100),)), "model 'unet' fails .RuntimeError: Sizes of tensors"),
        (RunConfig(input_sizes=((4, 4),)), "each side must be 8 to 8192 pixels"),
        (RunConfig(batch_size=2, batch_sizes=(1, 4)), "--batch-size and --batch-sizes"),
        (RunConfig(batch_sizes=(0,)), "--batch-sizes: expected one or more sizes of at least 1"),
        (RunConfig(executor="ray", input_sizes=((64, 64),)), "--input-sizes does not run on --executor ray"),
    ],
)
def test_a_size_no_model_can_take_is_a_usage_error(config: RunConfig, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        config.validate()


def test_a_table_from_before_sweeps_keeps_its_identity(tmp_path: Path) -> None:
    """A results.parquet without input_size (every segbench before sweeps) reads with it empty, so its
    cells keep their ids and groups, and compare and history match them to new runs' rows."""
    row = {"suite": "s", "model": "m", "backend": "b", "precision": "fp32", "device": "cpu", "batch_size": 1}
    pd.DataFrame([{**row, "status": "ok"}]).to_parquet(tmp_path / "results.parquet")
    (read,) = read_results(tmp_path).to_dict("records")
    assert read["input_size"] == "" and cell_id(read) == "s/m/b/fp32/cpu/1"
    assert tuple(read[c] for c in GROUP_COLUMNS) == ("s", "m", "cpu", 1, "")
    assert cell_id({**row, "input_size": "512x512"}) == "s/m/b/fp32/cpu/1/512x512"
