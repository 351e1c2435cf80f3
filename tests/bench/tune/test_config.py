"""Every tune mistake is one line and exit 2 before any work (nothing trained, nothing written)."""

from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.tune.config import TuneConfig

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
    from bench.tune.config import load_tune_config, save_tune_config

    config = _config(splits={"tuning": 8, "evaluation": 16})
    assert config.run_config().splits == {"tuning": 8, "evaluation": 16}
    _, suite = config.validate()
    assert suite.split_sizes["tuning"] == 8 and suite.split_sizes["evaluation"] == 16
    save_tune_config(config, tmp_path)
    assert load_tune_config(tmp_path).splits == {"tuning": 8, "evaluation": 16}
    with pytest.raises(UsageError, match="has no tuning split"):
        _config(splits={"tuning": 0}).validate()
