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


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ["--gradcam-layer", "nosuch"],
            "--gradcam-layer 'nosuch' is not a layer of model 'unet' (aliases: encoder, bottleneck, decoder",
        ),
        (["--threshold", "1.5"], "--threshold 1.5 is not valid; expected a probability between 0 and 1"),
        (
            ["--models", "unet,deeplabv3plus-resnet18", "--weights", "w.pt"],
            "--weights needs exactly one model in --models (got 2)",
        ),
    ],
)
def test_bad_run_arguments_are_one_line_exit_2(args, expected, capsys):
    assert main(["run", "--backends", "torch-eager", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_gradcam_layer_aliases_resolve_to_module_paths():
    from bench.gradcam.method import layer_path, resolve_layer
    from bench.models import create_model

    model = create_model("deeplabv3plus-resnet18", 3, 4)
    assert layer_path(model, "encoder") == "backbone.layer4"
    assert layer_path(model, "aspp.project") == "aspp.project"  # a module path passes through
    assert resolve_layer(model, layer_path(model, "encoder")) is model.backbone.layer4
