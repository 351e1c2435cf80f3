"""Backends from another installed distribution, found through the `segbench.backends` entry point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.backend import get_backend, list_backends
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


def test_cli_lists_plugin_backend_with_availability():
    env = {**os.environ, "PYTHONPATH": str(PLUGIN)}
    out = subprocess.run([sys.executable, "-m", "bench.cli", "list", "backends"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0
    line = next(l for l in out.stdout.splitlines() if l.startswith("dummy-threshold"))
    assert "fp32" in line and "cpu" in line and line.rstrip().endswith("available")


def test_option_validation_names_backend_option_and_choices():
    eager = get_backend("torch-eager")
    assert eager.resolve_options({}) == {"channels_last": "false"}
    with pytest.raises(UsageError, match="backend 'torch-eager' has no option 'nope'; valid options: channels_last"):
        eager.resolve_options({"nope": "1"})
    with pytest.raises(UsageError, match="option ort-qdq-int8.calibration=best is not valid; expected one of minmax"):
        get_backend("ort-qdq-int8").resolve_options({"calibration": "best"})
