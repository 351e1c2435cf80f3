"""Shared fixtures: an isolated cache, and one trained default model + run shared by the slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

from bench.measure.timing import TimingConfig
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark


def pytest_configure(config: pytest.Config) -> None:
    """Runs under test never wait for a slow machine (`--wait-for-quiet`): tests check what a run does,
    not its timing, and a CI runner in a slow state would wait up to two minutes in every group."""
    from bench.cli.options import QUIET_WAIT_ENV

    os.environ.setdefault(QUIET_WAIT_ENV, "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every slow test is an integration test too, so `-m "not slow and not integration"` is the fast loop."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole test session, never the user's: CI must train from scratch."""
    path = tmp_path_factory.mktemp("segbench-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGBENCH_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def trained_unet_model(session_cache: Path) -> nn.Module:
    """The default benchmark's reference unet (synthetic-nuclei, default recipe), from the session cache:
    the Grad-CAM tests need a model that segments, and training it once serves them and the default run."""
    from bench.data.suite import get_suite
    from bench.training.checkpoints import ensure_checkpoint, load_checkpoint
    from bench.training.recipes import DEFAULT_RECIPE

    suite = get_suite("synthetic-nuclei")
    model, _ = load_checkpoint("unet", suite, ensure_checkpoint("unet", suite, DEFAULT_RECIPE, progress=False))
    return model


@pytest.fixture(scope="session")
def default_run(session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The default benchmark (synthetic-nuclei, unet, every registered backend), shortened timing."""
    results = tmp_path_factory.mktemp("results")
    config = RunConfig(
        results_root=results, threads=2, progress=False, timing=TimingConfig(warmup_s=0.2, min_time_s=0.5, min_iters=30)
    )
    run_dir = run_benchmark(config, log=lambda message: None)
    return run_dir, pd.read_parquet(run_dir / "results.parquet")
