"""The artifact cache: prepared models keyed by a content hash of everything they depend on.

The key covers the checkpoint bytes, the backend (name, precision, options and its own source code)
and the calibration data, so a hit is guaranteed to be the artifact a fresh preparation would make.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import time
from pathlib import Path

from bench.backend import Artifact, Backend, PrepareContext
from bench.cache import array_digest, cache_root, file_digest, publish_directory, stable_hash

META_FILE = "artifact.json"


def artifact_key(backend: Backend, ctx: PrepareContext, checkpoint: Path) -> str:
    source = inspect.getsourcefile(type(backend))
    return stable_hash({
        "checkpoint": file_digest(checkpoint), "backend": backend.name, "precision": ctx.precision,
        "device": ctx.device, "options": ctx.options, "calibration": array_digest(ctx.calibration),
        "backend_source": file_digest(Path(source)) if source else None, "input_shape": ctx.input_shape,
        "onnx": file_digest(ctx.onnx_path) if ctx.onnx_path else None,
    })


def ensure_artifact(backend: Backend, ctx: PrepareContext, checkpoint: Path, label: str) -> tuple[Artifact, bool, float]:
    """(artifact, was_cached, prepare_seconds); prepares into a staging folder and publishes it whole."""
    key = artifact_key(backend, ctx, checkpoint)
    final = cache_root() / "artifacts" / backend.name / f"{label}--{ctx.precision}--{key}"
    if (final / META_FILE).exists():
        return Artifact(final, json.loads((final / META_FILE).read_text())), True, 0.0
    staging = final.with_name(f".{final.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    start = time.perf_counter()
    try:
        meta = backend.prepare(ctx, staging)
        meta = {**meta, "options": ctx.options, "key": key, "prepare_s": round(time.perf_counter() - start, 3)}
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        publish_directory(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Artifact(final, json.loads((final / META_FILE).read_text())), False, meta["prepare_s"]
