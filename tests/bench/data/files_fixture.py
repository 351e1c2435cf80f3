"""Tiny data sets written as real files and suite files, for the loader tests (imported by tests, which
never import a conftest: pytest loads those itself)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import SHARED_DATA

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")


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
