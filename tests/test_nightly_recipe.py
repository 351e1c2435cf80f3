"""The README's nightly recipe, run as written: a baseline, then two nights with a latency step
injected into one backend; `segbench history` must find exactly that change and nothing else."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.bench.models.byo_fixture import TinyNet
from tests.bench.test_backend import PLUGIN

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
# small nights: a tiny user model with its weights (no training), two backends, eight images
RUN_ARGS = (
    "--models tests.bench.models.byo_fixture:tiny_net --weights weights.pt --split train=8 --split evaluation=8 "
    "--backends torch-eager,dummy-threshold --no-gradcam --threads 1 --min-time 0.2 --min-iters 5 --warmup 0.05"
)


def recipe_blocks() -> tuple[str, str, str]:
    """The README's "Nightly recipe" section: nightly.toml, the one-off baseline, and nightly.sh."""
    section = README.read_text().split("### Nightly recipe", 1)[1].split("\n### ", 1)[0]
    (config,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    once, nightly = re.findall(r"```sh\n(.*?)```", section, re.S)[:2]
    assert "cp -rL results/latest results/baseline" in once and "segbench history" in nightly
    assert "--config nightly.toml" in once and "--config nightly.toml" in nightly
    return config, once, nightly


def test_the_nightly_recipe_finds_exactly_the_injected_step(tmp_path: Path) -> None:
    config, once, nightly = recipe_blocks()
    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), tmp_path / "weights.pt")
    # a cache of its own: the session's record of this machine's quietest reference kernel, set while the
    # host was in a fast state, would mark these runs noisy and test the host rather than the recipe
    cache = tmp_path / "cache"
    bin_dir = tmp_path / "bin"  # `segbench` on PATH is this checkout's CLI, with the test plugin importable
    bin_dir.mkdir()
    (bin_dir / "segbench").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bench.cli "$@"\n')
    (bin_dir / "segbench").chmod(0o755)
    (tmp_path / "nightly.sh").write_text(nightly)
    (tmp_path / "nightly.toml").write_text(config)
    # the baseline run takes the same options as the nightly ones (the recipe's `segbench run` is the default run)
    once = once.replace("segbench run --config nightly.toml", f"segbench run --config nightly.toml {RUN_ARGS}")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(README.parent)]),
        "SEGBENCH_CACHE": str(cache),
    }

    def sh(script: str, *args: str, delay_ms: int = 0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", script, "sh", *args],
            cwd=tmp_path,
            env={**env, "DUMMY_THRESHOLD_DELAY_MS": str(delay_ms)},
            capture_output=True,
            text=True,
            timeout=600,
        )

    baseline = sh(once)
    assert baseline.returncode == 0, baseline.stderr
    nights = [sh("sh ./nightly.sh " + RUN_ARGS, delay_ms=25) for _ in range(2)]
    for night in nights:
        assert night.returncode in (0, 1), night.stderr  # 1: compare or history found the step
    results = tmp_path / "results"
    settings = tomllib.loads((results / "latest" / "config.toml").read_text())
    assert settings["timeout"] == tomllib.loads(config)["timeout"]  # from the file
    assert settings["backends"] == ["torch-eager", "dummy-threshold"]  # the options given to nightly.sh win
    assert (results / "latest" / "bench.json").is_file() and (results / "latest" / "compare.md").is_file()
    bench = json.loads((results / "latest" / "bench.json").read_text())
    assert {b["name"].split("/")[2] for b in bench["benchmarks"]} == {"torch-eager-fp32", "dummy-threshold-fp32"}
    bmf = json.loads((results / "latest" / "bmf.json").read_text())  # the recipe's dashboard exports
    assert bmf and {name.split("/")[2] for name in bmf} <= {"torch-eager-fp32", "dummy-threshold-fp32"}
    gab = [json.loads((results / "latest" / name).read_text()) for name in ("gab.json", "gab.bigger.json")]
    assert all(isinstance(entries, list) for entries in gab) and gab[0] + gab[1]
    assert all({"name", "unit", "value"} <= set(entry) for entry in gab[0] + gab[1]), gab

    history_md = (results / "history.md").read_text()
    assert "3 runs" in history_md, history_md  # the baseline copy is not counted as a fourth night
    table = [line for line in history_md.splitlines() if line.startswith("| ")]
    rows = [line for line in table if "latency_p50_ms" in line]
    changes = [line for line in table if "worse" in line or "better" in line]
    quality = {
        (run.parent.name, row.backend): row.timing_quality
        for run in sorted(results.glob("2*/results.parquet"))
        for row in pd.read_parquet(run).itertuples()
    }
    assert len(changes) == 1 and len(rows) == 1, (history_md, quality)
    assert "dummy-threshold" in changes[0] and "worse" in changes[0]
    first = sorted(p for p in results.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0].isdigit())
    assert first[1].name in changes[0]  # the step starts at the second run
    if "unconfirmed" not in changes[0]:  # a quietly timed night at the new level: history exits 1
        assert nights[1].returncode == 1
    samples = pd.read_parquet(results / "latest" / "samples.parquet")
    step = samples[samples.backend == "dummy-threshold"].latency_ns.median() / 1e6
    assert step >= 25  # the injected sleep really was timed
    assert (results / "history.html").read_text().count('<img class="trend"') == 1
