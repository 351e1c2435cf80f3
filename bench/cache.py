"""Where expensive things (checkpoints, artifacts, reference predictions) are kept, keyed by hash.

A cache hit must never change a number except the set-up time, so every key covers everything the
cached object depends on: the inputs, the code that builds it (`code_digest`: the module and every
project module it imports, lazily or not, however deep) and the versions of the libraries that do
the numerical work (`library_versions`). A key on one source file served artifacts built by old code
after an edit elsewhere, or after a library upgrade, which a nightly run must never compare.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
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


PROJECT_PACKAGES = ("bench", "backends")
# The libraries whose arithmetic ends up in what the harness itself caches (checkpoints, reference logits,
# fp32 Grad-CAM maps): an upgrade must rebuild it. A backend's artifact depends on these and on the
# libraries the backend declares (`Backend.libraries`, added by `bench.run.artifacts.artifact_key`), so a
# plugin's runtime keys its artifacts without a line here.
NUMERICAL_LIBRARIES = ("torch", "numpy", "scipy", "pillow")


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _imports(path: Path, module: str) -> set[str]:
    """Every module name a source file imports, anywhere in it (`from a import b` also names a.b;
    relative imports are resolved against `module`, the name the file is imported under)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except ImportError:  # beyond the top-level package: Python would refuse it too
                continue
            if node.module:
                names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def source_closure(module: str, packages: tuple[str, ...] = PROJECT_PACKAGES) -> list[Path]:
    """The source files of `module` and of every module of `packages` it reaches through imports (static:
    a lazy import inside a function counts, so the closure errs on the side of covering too much).
    A plugin's own top-level package is followed too."""
    roots = (*packages, module.split(".")[0])
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        for parent in (name.rsplit(".", 1)[0],) if "." in name else ():
            pending.append(parent)  # a package's __init__ runs before its modules
        pending.extend(n for n in _imports(path, name) if n.split(".")[0] in roots and n not in seen)
    return sorted(set(seen.values()))


@functools.cache
def code_digest(*modules: str) -> str:
    """One hash of the source closures of `modules` (cached for the process: the code does not change
    under a running process)."""
    files = sorted({path for module in modules for path in source_closure(module)})
    return stable_hash([(path.name, file_digest(path)) for path in files])


def library_versions(names: tuple[str, ...] = NUMERICAL_LIBRARIES) -> dict[str, str | None]:
    """Installed versions of the numerical libraries (None where one is not installed). A library installed
    as another build of the same module is found too, its version followed by that build's name:
    "1.31.1 (onnxruntime-gpu)" for `onnxruntime` (the GPU recipe in docs/install.md)."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = _other_build_version(name)
    return found


def _other_build_version(name: str) -> str | None:
    from importlib import metadata

    for dist in _module_distributions().get(name.replace("-", "_"), ()):
        try:
            return f"{metadata.version(dist)} ({dist})"
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _module_distributions() -> Mapping[str, list[str]]:
    """Top-level module -> the distributions that install it (read once: about 0.1 s in a full set-up)."""
    from importlib import metadata

    return metadata.packages_distributions()


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
