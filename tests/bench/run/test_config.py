"""--split: a run's split counts are saved with the run, so a resume and every cell's worker see them."""

from __future__ import annotations

from pathlib import Path

from bench.run.config import RunConfig, load_run_config, save_run_config
from bench.run.matrix import plan_backends
from bench.run.runner import plan_cells


def test_split_counts_survive_a_resume(tmp_path: Path) -> None:
    config = RunConfig(suites=("dsb2018",), splits={"train": 0.8, "evaluation": "all", "tuning": 4})
    save_run_config(config, tmp_path)
    assert load_run_config(tmp_path).splits == {"train": 0.8, "evaluation": "all", "tuning": 4}
    save_run_config(RunConfig(), tmp_path)
    assert load_run_config(tmp_path).splits == {}


def test_split_counts_reach_the_cells_workers(tmp_path: Path) -> None:
    """A cell's worker reads the suite file again, in a fresh process: the counts travel in its spec."""
    checkpoint, reference = tmp_path / "model.pt", tmp_path / "reference.npy"
    checkpoint.write_bytes(b"weights")
    reference.write_bytes(b"logits")
    config = RunConfig(backends=("torch-eager",), splits={"evaluation": 8, "train": 40})
    save_run_config(config, tmp_path)
    resumed = load_run_config(tmp_path)
    plans = plan_backends(resumed.backend_specs(), {}, "cpu")
    ((spec, _),) = plan_cells(resumed, plans, {("synthetic-nuclei", "unet"): (checkpoint, reference)}, {})
    sizes = spec.load_suite().split_sizes
    assert sizes["evaluation"] == 8 and sizes["train"] == 40 and sizes["calibration"] == 32


def test_profile_settings_survive_a_resume_and_reach_the_cells(tmp_path: Path) -> None:
    """--profile is saved with the run; each cell gets the pass's length and its own profiler folder."""
    checkpoint, reference = tmp_path / "model.pt", tmp_path / "reference.npy"
    checkpoint.write_bytes(b"weights")
    save_run_config(RunConfig(backends=("torch-eager", "ort"), profile=True, profile_calls=7), tmp_path)
    resumed = load_run_config(tmp_path)
    assert resumed.profile and resumed.profile_calls == 7
    plans = plan_backends(resumed.backend_specs(), {}, "cpu")
    cells = plan_cells(resumed, plans, {("synthetic-nuclei", "unet"): (checkpoint, reference)}, {}, tmp_path)
    assert [spec.profile_calls for spec, _ in cells] == [7, 7]
    folders = {spec.profile_dir for spec, _ in cells}
    assert len(folders) == 2 and all(f is not None and f.parent == tmp_path / "profiles" for f in folders)
    save_run_config(RunConfig(backends=("torch-eager",)), tmp_path)
    ((spec, _),) = plan_cells(
        load_run_config(tmp_path), plans[:1], {("synthetic-nuclei", "unet"): (checkpoint, reference)}, {}, tmp_path
    )
    assert spec.profile_calls == 0
