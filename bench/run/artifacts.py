"""The artifact cache: prepared models keyed by a content hash of everything they depend on.

The key covers the checkpoint bytes, the backend (name, precision, options and its own source code)
and the calibration data, so a hit is guaranteed to be the artifact a fresh preparation would make.
`PreparedArtifact` is the prepare stage's record: where the artifact is, what it holds (size,
int8/float operators, notes) and what preparing it cost.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backend import Artifact, Backend, OpCoverage, PrepareContext
from bench.cache import (
    NUMERICAL_LIBRARIES,
    array_digest,
    cache_root,
    code_digest,
    file_digest,
    library_versions,
    publish_directory,
    stable_hash,
)

META_FILE = "artifact.json"


@dataclass(frozen=True)
class PreparedArtifact:
    directory: Path
    meta: dict[str, Any]
    cached: bool
    prepare_s: float
    size_bytes: int
    coverage: OpCoverage | None
    notes: str
    files: tuple[str, ...]

    @property
    def artifact(self) -> Artifact:
        return Artifact(self.directory, self.meta)

    def columns(self) -> dict[str, Any]:
        coverage = self.coverage
        return {
            "model_size_bytes": self.size_bytes,
            "int8_ops": coverage.int8_count if coverage else None,
            "float_ops": coverage.float_count if coverage else None,
            "float_op_types": ",".join(sorted(coverage.float)) if coverage else None,
            "prepare_s": self.prepare_s,
            "artifact_cached": self.cached,
            "artifact_key": self.meta.get("key"),
        }

    def details(self) -> dict[str, Any]:
        """What goes to per_backend.json beside the row."""
        coverage = self.coverage
        return {
            "artifact_files": list(self.files),
            "int8_ops": coverage.int8 if coverage else None,
            "float_ops": coverage.float if coverage else None,
            "prepare_meta": self.meta,
        }


def artifact_libraries(backend: Backend) -> tuple[str, ...]:
    """The harness's numerical libraries and the ones the backend declares, once each."""
    return tuple(dict.fromkeys((*NUMERICAL_LIBRARIES, *backend.libraries)))


def artifact_key(backend: Backend, ctx: PrepareContext, checkpoint: Path) -> str:
    """Everything the artifact is built from: the weights, the backend with its options, the calibration
    data, the input shape, a user's ONNX file, the code of the backend and of the model's class with every
    project module they import (a model's forward can change without its weights changing), and the
    numerical libraries."""
    from bench.models import model_code_modules  # torch: only where a model is built

    return stable_hash(
        {
            "checkpoint": file_digest(checkpoint),
            "backend": backend.name,
            "precision": ctx.precision,
            "device": ctx.device,
            "options": ctx.options.as_strings(),
            "calibration": array_digest(ctx.calibration),
            "code": code_digest(type(backend).__module__, *model_code_modules(ctx.model_name, ctx.model)),
            "libraries": library_versions(artifact_libraries(backend)),
            "input_shape": ctx.input_shape,
            "onnx": file_digest(ctx.onnx_path) if ctx.onnx_path else None,
        }
    )


def prepare_into(backend: Backend, ctx: PrepareContext, folder: Path) -> dict[str, Any]:
    """`backend.prepare` into `folder`, and the metadata as it is stored beside the files (JSON: a
    reserved "coverage" `OpCoverage` in its dict form; the options as strings; the time it took)."""
    start = time.perf_counter()
    meta = backend.prepare(ctx, folder)
    coverage = meta.get("coverage")
    if isinstance(coverage, OpCoverage):
        meta = {**meta, "coverage": coverage.to_meta()}
    meta = {**meta, "options": ctx.options.as_strings(), "prepare_s": round(time.perf_counter() - start, 3)}
    return json.loads(json.dumps(meta, default=str))


def cached_artifact(backend: Backend, ctx: PrepareContext, checkpoint: Path, label: str) -> PreparedArtifact | None:
    """The artifact from the cache, or None where it has not been prepared yet: what the run's own process
    asks before it starts a worker to prepare one (`bench.run.cell.prepare_cell`)."""
    final = _folder(backend, ctx, artifact_key(backend, ctx, checkpoint), label)
    return _prepared(backend, final, cached=True, prepare_s=0.0) if (final / META_FILE).exists() else None


def ensure_artifact(backend: Backend, ctx: PrepareContext, checkpoint: Path, label: str) -> PreparedArtifact:
    """The artifact from the cache, or prepared into a staging folder and published whole."""
    key = artifact_key(backend, ctx, checkpoint)
    final = _folder(backend, ctx, key, label)
    if (final / META_FILE).exists():
        return _prepared(backend, final, cached=True, prepare_s=0.0)
    staging = final.with_name(f".{final.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        meta = {**prepare_into(backend, ctx, staging), "key": key}
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        publish_directory(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _prepared(backend, final, cached=False, prepare_s=meta["prepare_s"])


def _folder(backend: Backend, ctx: PrepareContext, key: str, label: str) -> Path:
    return cache_root() / "artifacts" / backend.name / f"{label}--{ctx.precision}--{key}"


def _prepared(backend: Backend, final: Path, cached: bool, prepare_s: float) -> PreparedArtifact:
    artifact = Artifact(final, json.loads((final / META_FILE).read_text()))
    return PreparedArtifact(
        directory=final,
        meta=artifact.meta,
        cached=cached,
        prepare_s=prepare_s,
        size_bytes=artifact.size_bytes,
        coverage=backend.coverage(artifact),
        notes=backend.notes(artifact),
        files=tuple(p.name for p in artifact.files),
    )
