"""`segbench run`'s exit code on real runs: 1 when a cell ends in error or a row misses a --fail-on bound,
0 otherwise (an unavailable backend is no error); --resume DIR --fail-on judges a finished run again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bench.models.byo_fixture import TinyNet
from tests.bench.test_backend import PLUGIN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def segbench(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT)]), "SEGBENCH_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )


def small_run(tmp_path: Path, backends: str) -> list[str]:
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    return [
        "run",
        "--models",
        "tests.bench.models.byo_fixture:tiny_net",
        "--weights",
        str(tmp_path / "weights.pt"),
        "--backends",
        backends,
        "--no-gradcam",
        "--threads",
        "1",
        "--min-time",
        "0.2",
        "--min-iters",
        "5",
        "--warmup",
        "0.05",
        "--split",
        "train=8",
        "--split",
        "evaluation=8",
        "--quiet",
        "--out",
        str(tmp_path / "results"),
    ]


def test_an_error_cell_exits_1_and_is_named(session_cache: Path, tmp_path: Path) -> None:
    done = segbench(small_run(tmp_path, "torch-eager,dummy-fake-int8"), session_cache)
    assert done.returncode == 1, done.stderr
    assert "segbench run: 1 cell(s) ended in error (exit 1):" in done.stderr
    assert "synthetic-nuclei/tests.bench.models.byo_fixture:tiny_net/dummy-fake-int8/int8/cpu/1: error: " in done.stderr


def test_fail_on_judges_every_row_and_a_resume_judges_again(session_cache: Path, tmp_path: Path) -> None:
    """The naive threshold backend disagrees with the float model: a pixel-agreement bound fails on it (not
    on the reference itself, the yardstick); the unavailable TensorRT row is named, not failed. A resume of
    the finished run measures nothing and judges it by the bounds it is given."""
    args = small_run(tmp_path, "torch-eager,dummy-threshold,tensorrt-int8")
    done = segbench([*args, "--fail-on", "pixel_agreement>=0.99", "--fail-on", "model_size_bytes<=1e9"], session_cache)
    assert done.returncode == 1, done.stderr
    lines = [line.removeprefix("segbench run: ") for line in done.stderr.splitlines()]
    cell = "synthetic-nuclei/tests.bench.models.byo_fixture:tiny_net/{}/{}/cpu/1"
    assert "ended in error" not in done.stderr  # unavailable is not an error
    assert "--fail-on pixel_agreement>=0.99 model_size_bytes<=1000000000: 2 of 3 judged row bound(s) held" in lines[0]
    assert any(
        line.startswith(f"  {cell.format('dummy-threshold', 'fp32')}: pixel_agreement>=0.99: ") for line in lines
    )
    assert done.stderr.count("misses by") == 1  # eager is the yardstick of agreement; both sizes hold
    assert f"  {cell.format('tensorrt-int8', 'int8')}: unavailable, no bound judged" in lines
    run_dir = next(p for p in (tmp_path / "results").iterdir() if p.is_dir() and not p.is_symlink())
    resumed = segbench(["run", "--resume", str(run_dir), "--quiet", "--fail-on", "pixel_agreement>=0.5"], session_cache)
    assert resumed.returncode == 0, resumed.stderr
    assert "--fail-on pixel_agreement>=0.5: 1 of 1 judged row bound(s) held" in resumed.stderr
    assert segbench(["run", "--resume", str(run_dir), "--quiet"], session_cache).returncode == 0
