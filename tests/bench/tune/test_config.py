"""Every tune mistake is one line and exit 2 before any work (nothing trained, nothing written)."""

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.measure.timing import TimingConfig
from bench.run.settings import SharedSettings
from bench.tune.config import TuneConfig, load_tune_config, save_tune_config

SUITES = Path(__file__).resolve().parents[3] / "suites"


def _config(**changes) -> TuneConfig:
    base = {"suite": "synthetic-nuclei", "model": "unet", "backend": "ort-qdq-int8", "budgets": ("dice_drift>=-0.01",)}
    return TuneConfig(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"budgets": ()}, "needs --budget .* or --calibration-sizes"),
        ({"budgets": ("dise_drift>=0",)}, "no column 'dise_drift'"),
        ({"budgets": ("dice_drift>0",)}, "--budget 'dice_drift>0' is not valid"),
        ({"backend": "torch-eager"}, "needs an int8 backend"),
        ({"backend": "ort"}, "needs an int8 backend"),
        ({"backend_options": {"float_layers": "encoder.0.0"}}, "tune chooses the float layers itself"),
        ({"max_layers": 0}, "--max-layers 0 is not valid"),
        ({"calibration_sizes": (8, 100000)}, "--calibration-sizes 100000 is not valid .* expected 1..352"),
        ({"calibration_methods": ("histogram",)}, "calibration=histogram is not valid; expected one of minmax"),
        ({"model": "unett"}, "unknown model 'unett'"),
    ],
)
def test_mistakes_are_usage_errors(changes: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config(**changes).validate()


def test_budgets_on_quality_per_class_and_gradcam_columns_are_accepted() -> None:
    budgets = ("miou_drift>=-0.005", "min_class_iou_drift>=-0.02", "iou_nucleus_drift>=-0.01", "gradcam_pearson>=0.9")
    plan, suite = _config(budgets=budgets).validate()
    assert plan.name == "ort-qdq-int8" and suite.split_sizes["tuning"] == 32
    assert _config(budgets=budgets).needs_gradcam


def test_a_suite_without_a_tuning_split_is_refused(tmp_path: Path) -> None:
    text = (SUITES / "synthetic-nuclei.toml").read_text()
    path = tmp_path / "no-tuning.toml"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("tuning")))
    with pytest.raises(UsageError, match="has no tuning split; add tuning = N"):
        _config(suite=str(path)).validate()


def test_the_command_line_refuses_before_touching_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    args = ["tune", "--suite", "synthetic-nuclei", "--model", "unet", "--out", str(out)]
    assert main([*args, "--backend", "ort-qdq-int8", "--budget", "nope>=1"]) == 2
    assert main([*args, "--backend", "ort-qdq-int8", "--budget", "dice_drift>=0", "--option", "ort.spinning=off"]) == 2
    assert main(["tune", "--suite", "synthetic-nuclei", "--budget", "dice_drift>=0"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("segbench") for line in errors)
    assert "needs --model, --backend" in errors[2]
    assert not out.exists()


def test_split_counts_reach_the_run_and_survive_a_resume(tmp_path: Path) -> None:
    config = _config(shared=SharedSettings(splits={"tuning": 8, "evaluation": 16}))
    assert config.run_config().splits == {"tuning": 8, "evaluation": 16}
    _, suite = config.validate()
    assert suite.split_sizes["tuning"] == 8 and suite.split_sizes["evaluation"] == 16
    save_tune_config(config, tmp_path)
    assert load_tune_config(tmp_path).shared.splits == {"tuning": 8, "evaluation": 16}
    with pytest.raises(UsageError, match="has no tuning split"):
        _config(shared=SharedSettings(splits={"tuning": 0})).validate()


# tune.json's keys, in order, as every tune folder so far has them (--resume and `segbench report` read it)
TUNE_JSON_KEYS = [
    *["suite", "model", "backend", "budgets", "backend_options", "threads", "batch_size", "timing", "results_root"],
    *["cell_timeout_s", "progress", "data_dir", "weights", "checkpoint", "max_layers", "max_steps"],
    *["calibration_sizes", "calibration_methods", "seeds", "sqnr_images", "splits"],
]


def test_tune_json_keeps_the_shared_settings_flat_where_they_were(tmp_path: Path) -> None:
    shared = SharedSettings(
        threads=2,
        timing=TimingConfig(min_iters=5, priority="high"),
        results_root=tmp_path.parent,  # as a resume reads it: the tune folder's parent
        cell_timeout_s=60.0,
        progress=False,
        data_dir=tmp_path / "data",
        checkpoint=tmp_path / "c.pt",
        splits={"tuning": 8},
    )
    config = _config(shared=shared, max_steps=3, calibration_sizes=(4, 8))
    save_tune_config(config, tmp_path)
    data = json.loads((tmp_path / "tune.json").read_text())
    assert list(data) == TUNE_JSON_KEYS and list(config.to_json()) == TUNE_JSON_KEYS
    assert (data["threads"], data["progress"], data["splits"]) == (2, False, {"tuning": 8})
    assert data["timing"]["priority"] == "high" and data["checkpoint"] == str(tmp_path / "c.pt")
    assert load_tune_config(tmp_path) == config


def test_a_tune_measures_with_its_shared_settings() -> None:
    shared = SharedSettings(threads=3, batch_size=2, cell_timeout_s=9.0, progress=False, splits={"tuning": 8})
    run = _config(shared=shared, backend_options={"calibration": "entropy"}).run_config()
    assert {name: getattr(run, name) for name in SharedSettings.__dataclass_fields__} == shared.fields()
    assert run.backends == ("torch-eager:fp32", "ort-qdq-int8")
    assert run.backend_options == {"ort-qdq-int8": {"calibration": "entropy"}}
