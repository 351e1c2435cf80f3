"""A reference checkpoint travels: exported on one machine, checked and used as is on another."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cache import file_digest
from bench.cli import main
from bench.data.suite import get_suite
from bench.errors import UsageError
from bench.training.checkpoints import check_travelling_checkpoint, export_checkpoint
from tests.bench.data.files_fixture import save


@pytest.fixture
def exported(session_cache, trained_unet_model, tmp_path):
    from bench.training.checkpoints import checkpoint_path

    suite = get_suite("synthetic-nuclei")
    path = tmp_path / "unet-nuclei.pt"
    digest = export_checkpoint(checkpoint_path("unet", suite), path)
    return path, digest


@pytest.mark.slow  # trains the reference unet (about 50 s) unless another test of the session did
def test_an_exported_checkpoint_is_checked_against_model_and_suite(exported, tmp_path):
    path, digest = exported
    assert digest == file_digest(path)
    check_travelling_checkpoint(path, "unet", get_suite("synthetic-nuclei"))
    with pytest.raises(
        UsageError,
        match="holds model 'unet' trained on suite 'synthetic-nuclei'; this run is model "
        "'unet' on suite 'synthetic-scenes'",
    ):
        check_travelling_checkpoint(path, "unet", get_suite("synthetic-scenes"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="not a segbench checkpoint"):
        check_travelling_checkpoint(junk, "unet", get_suite("synthetic-nuclei"))
    bad = tmp_path / "bad.pt"
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    torch.save(payload, bad)
    with pytest.raises(UsageError, match="its weights do not fit model 'unet'"):
        check_travelling_checkpoint(bad, "unet", get_suite("synthetic-nuclei"))


@pytest.mark.slow
def test_a_run_with_the_exported_checkpoint_records_its_digest_everywhere(exported, tmp_path, capsys):
    path, digest = exported
    out = tmp_path / "results"
    code = main(
        [
            "run",
            "--backends",
            "torch-eager,ort",
            "--checkpoint",
            str(path),
            "--no-gradcam",
            "--quiet",
            "--min-time",
            "0.3",
            "--min-iters",
            "5",
            "--warmup",
            "0.1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    run = next(p for p in out.iterdir() if p.name != "latest")
    rows = pd.read_parquet(run / "results.parquet")
    assert set(rows.checkpoint_digest) == {digest}
    assert json.loads((run / "env.json").read_text())["checkpoints"] == {"synthetic-nuclei/unet": digest}
    capsys.readouterr()
    assert main(["run", "--checkpoint", str(path), "--suite", "synthetic-scenes", "--out", str(tmp_path / "r2")]) == 2
    assert "this run is model 'unet' on suite 'synthetic-scenes'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_segbench_train_says_which_recipe_trains_and_keys_the_checkpoint_by_it(tmp_path, monkeypatch, capsys):
    """A copy of a built-in suite under a new name trains with the recipe it names (training is stubbed)."""
    from bench.models import create_model
    from bench.training import checkpoints
    from bench.training.recipes import recipe_for

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    trained = []

    def train(model_name, suite, recipe, progress):
        trained.append(recipe)
        meta = {"evaluation_dice": 0.5, "evaluation_miou": 0.4, "train_seconds": 0.0}
        return create_model(model_name, suite.in_channels, suite.num_classes), meta

    monkeypatch.setattr(checkpoints, "train_model", train)
    for k in range(10):  # a dsb2018 layout (the counts below fit it)
        save(tmp_path / "data" / f"s{k}" / "images" / f"s{k}.png", np.full((6, 6, 4), 9, np.uint8))
        save(tmp_path / "data" / f"s{k}" / "masks" / "m.png", np.eye(6, dtype=np.uint8) * 255)
    text = get_suite("dsb2018").path.read_text().replace('name = "dsb2018"', 'name = "dsb2018-full"')
    suite_file = tmp_path / "dsb2018-full.toml"
    suite_file.write_text(text)
    args = ["train", "--suite", str(suite_file), "--model", "unet", "--data-dir", str(tmp_path / "data")]
    args += ["--split", "train=0.5", "--split", "calibration=1", "--split", "evaluation=all", "--split", "tuning=1"]
    assert main(args) == 0
    assert "training unet on dsb2018-full with recipe dsb2018: 1200 steps, batch 8, lr 0.001" in capsys.readouterr().err
    assert trained == [recipe_for("unet", "dsb2018")]
    assert main(args) == 0  # cached: nothing trains, nothing is said
    assert "training" not in capsys.readouterr().err and len(trained) == 1
    suite_file.write_text(text.replace('recipe = "dsb2018"', 'recipe = "default"'))
    assert main(args) == 0  # another recipe is another checkpoint
    assert "with recipe default: 200 steps, batch 8, lr 0.003" in capsys.readouterr().err and len(trained) == 2


def test_the_training_line_and_bar_stay_on_the_terminal_while_library_output_is_captured(tmp_path, monkeypatch, capfd):
    """Inside a run the command's process is captured (bench.output.capture); training is segbench's own
    work, so its line and tqdm bar still reach the terminal, while a library's warning goes to the log."""
    import sys
    import warnings

    from bench.models import create_model
    from bench.output.capture import OutputCapture
    from bench.training import checkpoints
    from bench.training.recipes import DEFAULT_RECIPE
    from bench.training.trainer import _progress

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)  # fd 2, as in the command (capfd's sys.stderr is not)

    def train(model_name, suite, recipe, progress):
        warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)
        with _progress(3, f"train {model_name} on {suite.name}", progress) as bar:
            bar.update(3)
        meta = {"evaluation_dice": 0.5, "evaluation_miou": 0.4, "train_seconds": 0.0}
        return create_model(model_name, suite.in_channels, suite.num_classes), meta

    monkeypatch.setattr(checkpoints, "train_model", train)
    log = tmp_path / "logs" / "segbench.log"
    with OutputCapture(log, keep_terminal=True):
        checkpoints.ensure_checkpoint("unet", get_suite("synthetic-nuclei"), DEFAULT_RECIPE, progress=True)
    err = capfd.readouterr().err
    assert "training unet on synthetic-nuclei" in err and "train unet on synthetic-nuclei" in err
    assert "deprecation" not in err
    text = log.read_text()
    assert "FutureWarning: a library's deprecation" in text and "train unet" not in text
