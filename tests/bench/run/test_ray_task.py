"""One group's sub-run on a Ray node, with the run itself a stand-in: it runs the saved configuration into
the node's folder with progress on stderr, and a usage error is one line and exit 2, as `segbench run`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.run import ray_task


@dataclass(frozen=True)
class _Config:
    results_root: Path
    threads: int = 2


def test_the_group_runs_its_saved_configuration_into_the_nodes_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    ran: list[_Config] = []

    def run_benchmark(config: _Config, log: Callable[[str], None]) -> None:
        ran.append(config)
        log("cell 1/2 done")

    monkeypatch.setattr(ray_task, "load_run_config", lambda folder: _Config(folder / "saved-root"))
    monkeypatch.setattr(ray_task, "run_benchmark", run_benchmark)
    assert ray_task.main(tmp_path / "config", tmp_path / "out") == 0
    assert ran == [_Config(tmp_path / "out")]  # the saved options, another results folder
    assert capsys.readouterr() == ("", "cell 1/2 done\n")


def test_a_usage_error_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    def run_benchmark(config: _Config, log: Callable[[str], None]) -> None:
        raise UsageError("unknown backend 'nope'; valid backends: ort")

    monkeypatch.setattr(ray_task, "load_run_config", lambda folder: _Config(folder))
    monkeypatch.setattr(ray_task, "run_benchmark", run_benchmark)
    assert ray_task.main(tmp_path, tmp_path / "out") == 2
    assert capsys.readouterr().err == "segbench: error: unknown backend 'nope'; valid backends: ort\n"


def test_any_other_failure_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def run_benchmark(config: _Config, log: Callable[[str], None]) -> None:
        raise RuntimeError("worker pool broke")

    monkeypatch.setattr(ray_task, "load_run_config", lambda folder: _Config(folder))
    monkeypatch.setattr(ray_task, "run_benchmark", run_benchmark)
    with pytest.raises(RuntimeError, match="worker pool broke"):
        ray_task.main(tmp_path, tmp_path / "out")
