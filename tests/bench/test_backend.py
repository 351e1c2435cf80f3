"""Backends from another installed distribution, found through the `segbench.backends` entry point."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from bench.backend import BackendOptions, NoOptions, get_backend, list_backends
from bench.errors import UsageError

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_fixture"


@pytest.fixture
def plugin_installed(monkeypatch):
    """The fixture folder holds a package plus its .dist-info, i.e. an installed distribution."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    yield
    sys.modules.pop("segbench_dummy_backends", None)


def test_plugin_backends_are_registered(plugin_installed):
    names = list_backends()
    assert {"dummy-threshold", "dummy-abort", "dummy-fake-int8"} <= set(names)
    assert get_backend("dummy-threshold").precisions == ("fp32",)


def test_plugin_absent_means_not_registered():
    assert "dummy-threshold" not in list_backends()


@pytest.mark.integration
def test_cli_lists_plugin_backend_with_availability():
    env = {**os.environ, "PYTHONPATH": str(PLUGIN)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.cli", "list", "backends"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0
    line = next(text for text in out.stdout.splitlines() if text.startswith("dummy-threshold"))
    assert "fp32" in line and "cpu" in line and line.rstrip().endswith("available")


def test_option_validation_names_backend_option_and_choices():
    eager = get_backend("torch-eager")
    assert eager.parse_options({}).as_strings() == {"channels_last": "false"}
    assert eager.parse_options({"channels_last": "true"}).channels_last is True
    with pytest.raises(UsageError, match="backend 'torch-eager' has no option 'nope'; valid options: channels_last"):
        eager.parse_options({"nope": "1"})
    with pytest.raises(UsageError, match="channels_last=yes is not valid; expected one of true, false"):
        eager.parse_options({"channels_last": "yes"})
    with pytest.raises(UsageError, match="option ort-qdq-int8.calibration=best is not valid; expected one of minmax"):
        get_backend("ort-qdq-int8").parse_options({"calibration": "best"})


@dataclass(frozen=True)
class _Options(BackendOptions):
    mode: Literal["a", "b"] = "a"
    fast: bool = False
    count: int = 2
    label: str = "x"

    def check(self):
        return None if self.count > 0 else f"count must be positive, got {self.count}"


def test_typed_options_parse_every_kind_once_and_print_back_as_typed():
    options = _Options.parse("demo", {"mode": "b", "fast": "true", "count": "7", "label": "any text"})
    assert options == _Options(mode="b", fast=True, count=7, label="any text")
    assert _Options.parse("demo", options.as_strings()) == options  # stored strings read back the same
    assert _Options.choices() == {"mode": ("a", "b"), "fast": ("true", "false")}
    with pytest.raises(UsageError, match="option demo.count=many is not valid; expected an integer"):
        _Options.parse("demo", {"count": "many"})
    with pytest.raises(UsageError, match="demo: count must be positive, got 0"):
        _Options.parse("demo", {"count": "0"})
    assert NoOptions.parse("demo", {}).as_strings() == {}
    with pytest.raises(UsageError, match="backend 'demo' has no option 'x'; valid options: none"):
        NoOptions.parse("demo", {"x": "1"})


def test_coverage_and_notes_are_stored_by_the_base_class(tmp_path):
    from bench.backend import Artifact, OpCoverage

    coverage = OpCoverage(int8={"QLinearConv": 3}, float={"Resize": 1}, boundaries={"QuantizeLinear": 2})
    artifact = Artifact(tmp_path, {"coverage": coverage.to_meta(), "notes": "a note"})
    eager = get_backend("torch-eager")
    assert eager.coverage(artifact) == coverage and eager.notes(artifact) == "a note"
    assert eager.coverage(Artifact(tmp_path, {})) is None


def test_a_plugin_declares_its_float_side_its_libraries_and_its_onnx(plugin_installed, tmp_path, monkeypatch):
    """What bench/ once kept in lists of names, a plugin declares: its int8 cells are judged against its
    own float cell, its library keys its artifacts and is recorded in env.json."""
    from bench import cache
    from bench.environment import collect_environment
    from bench.results.counterparts import float_counterpart
    from bench.run.artifacts import artifact_key, artifact_libraries

    ran = {("dummy-float", "fp32"), ("torch-eager", "fp32")}
    assert float_counterpart("dummy-int8", "int8", ran) == ("dummy-float", "fp32")
    assert float_counterpart("dummy-int8", "int8", {("torch-eager", "fp32")}) == ("torch-eager", "fp32")
    assert float_counterpart("dummy-fake-int8", "int8", ran) == ("torch-eager", "fp32")  # declares none

    backend = get_backend("dummy-int8")
    assert "segbench-dummy-backends" in artifact_libraries(backend)
    assert not get_backend("dummy-int8").takes_onnx and get_backend("ort-qdq-int8").takes_onnx
    assert collect_environment(1)["libraries"]["segbench-dummy-backends"] == "0.1"

    import numpy as np

    from bench.backend import PrepareContext
    from bench.models import create_model

    checkpoint = tmp_path / "ck.pt"
    checkpoint.write_bytes(b"weights")
    model = create_model("unet", 1, 2)
    ctx = PrepareContext("unet", model, np.zeros((2, 1, 8, 8), np.float32), (1, 8, 8), 2, "int8", "cpu")
    before = artifact_key(backend, ctx, checkpoint)
    versions = cache.library_versions(artifact_libraries(backend))
    upgraded = {**versions, "segbench-dummy-backends": "0.2"}
    monkeypatch.setattr("bench.run.artifacts.library_versions", lambda names: upgraded)
    assert artifact_key(backend, ctx, checkpoint) != before


def test_every_built_in_int8_backend_declares_its_float_side():
    """The declarations that replaced FLOAT_COUNTERPARTS, read back from the backends themselves."""
    from bench.results.counterparts import float_counterpart

    ran = {("ort", "fp32"), ("openvino", "fp32"), ("tensorrt-fp16", "fp16"), ("torch-eager", "fp32")}
    assert float_counterpart("ort-qdq-int8", "int8", ran) == ("ort", "fp32")
    assert float_counterpart("openvino-int8", "int8", ran) == ("openvino", "fp32")
    assert float_counterpart("tensorrt-int8", "int8", ran) == ("tensorrt-fp16", "fp16")
    assert float_counterpart("torch-fx-int8", "int8", ran) == ("torch-eager", "fp32")
    assert float_counterpart("not-installed-int8", "int8", ran) == ("torch-eager", "fp32")
    onnx_takers = {name for name in list_backends() if get_backend(name).takes_onnx}
    assert onnx_takers == {"ort", "ort-qdq-int8", "openvino", "openvino-int8", "tensorrt-int8", "tensorrt-fp16"}
