"""`--config FILE.toml` (bench/cli/config_file.py): keys are the options, values go through the flags' own
types and choices, the command line wins, bad keys and values are one line naming the file and the key, and
the resolved settings a folder keeps read back to the same namespace."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from bench.cli.app import build_parser, command_parser, main, settled
from bench.cli.config_file import given_on_command_line, resolve_settings, resolved_config, settings_actions
from bench.errors import UsageError

NIGHTLY = """
models = ["unet"]
backends = ["torch-eager", "ort-qdq-int8"]
no-gradcam = true
min-time = 0.2
min_iters = 5
split = {train = 8, evaluation = "all"}
option = {ort-qdq-int8 = {calibration = "entropy"}}
fail-on = ["speedup_vs_fp32>=1"]
shard = "2/3"
"""


def _settled(tmp_path: Path, text: str, *flags: str, command: str = "run") -> argparse.Namespace:
    config = tmp_path / "c.toml"
    config.write_text(text)
    argv = [command, "--config", str(config), *flags]
    parser = build_parser()
    args = parser.parse_args(argv)
    return settled(parser, args, given_on_command_line(command_parser(parser, command), argv[1:]))


def test_a_file_sets_options_through_their_own_types(tmp_path: Path) -> None:
    args = _settled(tmp_path, NIGHTLY)
    assert args.models == ("unet",) and args.backends == ("torch-eager", "ort-qdq-int8")
    assert args.no_gradcam is True and args.min_time == 0.2 and args.min_iters == 5
    assert args.splits == ["train=8", "evaluation=all"]
    assert args.options == ["ort-qdq-int8.calibration=entropy"]
    assert args.fail_on == ["speedup_vs_fp32>=1"] and str(args.shard) == "2/3"


def test_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    args = _settled(tmp_path, NIGHTLY, "--min-iters", "7", "--split", "train=4", "--backends", "ort")
    assert args.min_iters == 7 and args.splits == ["train=4"] and args.backends == ("ort",)
    assert args.min_time == 0.2  # what the command line did not name still comes from the file


def test_a_flag_equal_to_its_default_still_wins(tmp_path: Path) -> None:
    assert _settled(tmp_path, "min-time = 0.2\n", "--min-time", "3").min_time == 3.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_tme = 3\n", "unknown key 'min_tme'; did you mean 'min-time'?"),
        ("min-time = -3\n", "key 'min-time': '-3' must be greater than 0"),
        ("threads = 2.5\n", "key 'threads': '2.5' is not an integer"),
        ('device = "tpu"\n', "key 'device': 'tpu' is not one of cpu, cuda"),
        ("no-gradcam = 1\n", "key 'no-gradcam': expected true or false, not 1"),
        ('resume = "results/latest"\n', "key 'resume' is not a setting a file can hold"),
        ("threads = {a = 1}\n", "key 'threads': expected a value, not a table"),
        ("min-time = \n", "not a TOML file"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err == f"segbench: error: --config {config}: {message}\n" or (message in err and err.count("\n") == 1), err
    assert not (tmp_path / "results").exists()  # nothing measured, nothing written


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: no such file" in capsys.readouterr().err


def test_config_beside_resume_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text("threads = 1\n")
    assert main(["run", "--resume", str(tmp_path), "--config", str(tmp_path / "c.toml")]) == 2
    assert "drop --config" in capsys.readouterr().err
    assert main(["tune", "--resume", str(tmp_path), "--config", str(tmp_path / "c.toml")]) == 2
    assert "drop --config" in capsys.readouterr().err


def test_the_resolved_config_reads_back_to_the_same_settings(tmp_path: Path) -> None:
    first = _settled(tmp_path, NIGHTLY, "--weights", "w.pt", "--gradcam-layer", "enc1,enc2")
    written = tmp_path / "config.toml"
    written.write_text(first.config_text)
    table = tomllib.loads(first.config_text)
    assert table["weights"] == str(Path("w.pt").resolve())  # absolute: read back from anywhere
    assert table["out"] == "results" and "quiet" not in table  # the results root as given; talk is not kept
    again = _settled(tmp_path, written.read_text())
    for dest in ("models", "backends", "splits", "options", "fail_on", "min_time", "threads"):
        assert getattr(again, dest) == getattr(first, dest), dest
    assert [n for group in again.gradcam_layers for n in group] == ["enc1", "enc2"]  # the run flattens them
    assert str(again.shard) == "2/3" and again.weights == Path("w.pt").resolve()
    assert again.config_text == first.config_text


def test_every_run_and_tune_option_is_a_key() -> None:
    parser = build_parser()
    for command in ("run", "tune"):
        keys = settings_actions(command_parser(parser, command))
        assert "config" not in keys and "resume" not in keys and "help" not in keys
        flags = {o for a in command_parser(parser, command)._actions for o in a.option_strings if o.startswith("--")}
        assert {f"--{k}" for k in keys} <= flags
    assert {"min-time", "backends", "fail-on", "option", "split", "no-gradcam"} <= set(
        settings_actions(command_parser(parser, "run"))
    )


def test_the_api_spelling_of_a_dest_is_accepted() -> None:
    parser = build_parser()
    run = command_parser(parser, "run")
    args = parser.parse_args(["run"])
    resolved = resolve_settings(run, args, {"fail_on": ["dice_drift>=-0.01"], "budgets": ["dice_drift>=-0.01"]}, "x")
    assert resolved.fail_on == ["dice_drift>=-0.01"] and resolved.budgets == ["dice_drift>=-0.01"]
    with pytest.raises(UsageError, match="x: unknown key 'fastest'"):
        resolve_settings(run, args, {"fastest": True}, "x")


def test_tune_takes_a_file_too(tmp_path: Path) -> None:
    args = _settled(
        tmp_path, 'suite = "synthetic-nuclei"\nmodel = "unet"\ncalibration-sizes = [8, 16]\n', command="tune"
    )
    assert args.suite == "synthetic-nuclei" and args.calibration_sizes == (8, 16)
    assert tomllib.loads(resolved_config(command_parser(build_parser(), "tune"), args))["calibration-sizes"] == [8, 16]
