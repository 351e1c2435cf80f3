import subprocess
import sys

import pytest

from bench.cli import main


def segbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=120)


def test_unknown_backend_exits_2_and_lists_valid_names():
    result = segbench("run", "--backends", "torch-eager,nope")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("segbench: error: unknown backend 'nope'; valid backends: ort, ort-qdq-int8, ")
    for name in ("tensorrt-int8", "torch-eager", "torch-fx-int8"):
        assert name in lines[0]


@pytest.mark.parametrize("option,value,kind", [("--models", "nope", "model"), ("--suite", "nope", "suite")])
def test_unknown_model_or_suite_exits_2(option, value, kind, capsys):
    assert main(["run", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"segbench: error: unknown {kind} 'nope'; valid {kind}s:")


def test_bad_option_value_is_one_line_exit_2():
    result = segbench("run", "--min-time", "-1")
    assert result.returncode == 2
    assert result.stderr.strip() == "segbench: error: argument --min-time: '-1' must be greater than 0"


def test_list_backends_shows_availability(capsys):
    assert main(["list", "backends"]) == 0
    out = capsys.readouterr().out
    assert "torch-eager" in out and "ort-qdq-int8" in out and "available" in out


def test_list_suites_and_models(capsys):
    assert main(["list", "suites"]) == 0
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "synthetic-nuclei" in out and "unet" in out
