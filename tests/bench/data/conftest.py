"""Fixtures of the loader tests: an isolated cache, a suite file writer (helpers: files_fixture.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never the user's cache, and a fresh one per test so a cache hit is never an accident."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SEGBENCH_CACHE", str(path))
    return path


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "suite.toml"
        path.write_text(text)
        return path

    return write
