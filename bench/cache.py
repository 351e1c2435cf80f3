"""Where expensive things (checkpoints, artifacts, reference predictions) are kept, keyed by hash.

A cache hit must never change a number except the set-up time, so every key covers everything the
cached object depends on.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def cache_root() -> Path:
    """`$SEGBENCH_CACHE`, else `$XDG_CACHE_HOME/segbench`, else `~/.cache/segbench`."""
    if env := os.environ.get("SEGBENCH_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segbench"


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def array_digest(*arrays: np.ndarray) -> str:
    """Content hash of arrays (shape, dtype and bytes), for calibration and evaluation data."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def module_digest(name: str) -> str:
    """Content hash of an imported module's source file: code that builds a cached object is part of its key."""
    module = importlib.import_module(name)
    return file_digest(Path(module.__file__ or ""))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so a killed process never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_directory(staging: Path, final: Path) -> None:
    """Move a fully written staging folder into place; a concurrent writer that won keeps its copy."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)
