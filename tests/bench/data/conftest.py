"""Helpers for the loader tests: an isolated cache, tiny data sets written as real files, suite files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never the user's cache, and a fresh one per test so a cache hit is never an accident."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SEGBENCH_CACHE", str(path))
    return path


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode=mode).save(path)
    return path


def suite_text(
    source: str,
    *,
    classes: list[str],
    channels: int = 3,
    size: tuple[int, int] = (16, 16),
    splits: tuple[int, int, int] = (3, 1, 2),
    extra: str = "",
    options: str = "",
) -> str:
    names = ", ".join(f'"{c}"' for c in classes)
    return (
        f'name = "tiny-{source}"\nsource = "{source}"\ndata = "tiny"\nclasses = [{names}]\n'
        f"in_channels = {channels}\ninput_size = [{size[0]}, {size[1]}]\n"
        f"mean = {[0.5] * channels}\nstd = {[0.25] * channels}\n{extra}\n"
        f"[splits]\nseed = 1\ntrain = {splits[0]}\ncalibration = {splits[1]}\nevaluation = {splits[2]}\n"
        f"[gradcam]\nimages = 1\n" + (f"[options]\n{options}\n" if options else "")
    )


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "suite.toml"
        path.write_text(text)
        return path

    return write
