"""The settings run and tune share: one record, declared as RunConfig declares its fields of those names,
spread into a RunConfig that writes run.json exactly as before."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig, load_run_config, save_run_config
from bench.run.settings import SharedSettings

# run.json's keys, in order, as every run folder so far has them (--resume, merge, report and Ray read it)
RUN_JSON_KEYS = [
    *["suites", "models", "backends", "device", "threads", "batch_size", "timing", "results_root"],
    *["cell_timeout_s", "progress", "backend_options", "data_dir", "weights", "checkpoint", "onnx", "gradcam"],
    *["gradcam_layers", "gradcam_method", "threshold", "splits", "shard", "executor", "ray_address", "where"],
    *["per_node", "profile", "profile_calls", "budgets", "objective"],
]


def test_run_config_declares_every_shared_setting_as_the_record_does() -> None:
    """Name, type and default alike, so a run and a tune given no option mean the same."""
    run = {f.name: f for f in dataclasses.fields(RunConfig)}
    for setting in dataclasses.fields(SharedSettings):
        assert setting.name in run, setting.name
        assert str(run[setting.name].type) == str(setting.type), setting.name
    assert {k: v for k, v in dataclasses.asdict(RunConfig()).items() if k in SharedSettings.__dataclass_fields__} == (
        dataclasses.asdict(SharedSettings())
    )


def test_the_settings_spread_into_a_run_config_with_their_own_split_counts() -> None:
    shared = SharedSettings(threads=3, batch_size=2, timing=TimingConfig(min_iters=7), splits={"tuning": 4})
    config = RunConfig(**shared.fields(), models=("unet",))
    assert (config.threads, config.batch_size, config.timing.min_iters, config.splits) == (3, 2, 7, {"tuning": 4})
    config.splits["tuning"] = 8
    assert shared.splits == {"tuning": 4}  # the record is not changed through a config built from it


def test_run_json_is_written_and_read_as_before(tmp_path: Path) -> None:
    shared = SharedSettings(
        threads=2,
        cell_timeout_s=60.0,
        progress=False,
        data_dir=tmp_path / "data",
        weights=tmp_path / "w.pt",
        splits={"evaluation": "all"},
    )
    from_shared = RunConfig(**shared.fields(), backends=("torch-eager",))
    by_field = RunConfig(
        backends=("torch-eager",),
        threads=2,
        cell_timeout_s=60.0,
        progress=False,
        data_dir=tmp_path / "data",
        weights=tmp_path / "w.pt",
        splits={"evaluation": "all"},
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_run_config(from_shared, tmp_path / "a")
    save_run_config(by_field, tmp_path / "b")
    written = (tmp_path / "a" / "run.json").read_text()
    assert written == (tmp_path / "b" / "run.json").read_text()
    data = json.loads(written)
    assert list(data) == RUN_JSON_KEYS
    assert (
        data["threads"] == 2 and data["data_dir"] == str(tmp_path / "data") and data["splits"] == {"evaluation": "all"}
    )
    assert list(data["timing"]) == list(dataclasses.asdict(TimingConfig()))
    resumed = load_run_config(tmp_path / "a")
    assert resumed == dataclasses.replace(from_shared, results_root=tmp_path)
