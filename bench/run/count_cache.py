"""Where a model's MAC count is kept in the cache (`count_record`): written by the cell's measuring worker
(`bench.run.stages.cache_graph_count`) or by the roofline stage in the parent (`bench.run.roofline`), read
by the latter. A module of its own so that the worker's stages and the parent's stage share the key
without importing each other."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.cache import cache_root, code_digest, file_digest, library_versions, stable_hash

if TYPE_CHECKING:
    from bench.onnx.macs import GraphCount
    from bench.run.matrix import CellSpec

COUNT_LIBRARIES = ("torch", "onnx", "onnxscript")  # the exporter and the shape inference the count rests on


def count_record(spec: CellSpec) -> Path:
    """Where a model's count is kept: keyed on the user's ONNX file's bytes (--onnx), else on the
    checkpoint's, the model and the suite (its input shape), and on the counting code and libraries."""
    source = {"onnx": file_digest(spec.onnx)} if spec.onnx is not None else {"checkpoint": spec.checkpoint_digest}
    key = stable_hash(
        {
            **source,
            "model": spec.model,
            "suite": spec.suite_file or spec.suite,
            "splits": spec.splits,
            **({"input_size": list(spec.input_size)} if spec.input_size is not None else {}),  # a swept size
            "code": code_digest("bench.onnx.macs"),
            "libraries": library_versions(COUNT_LIBRARIES),
        }
    )
    return cache_root() / "graph-count" / f"{key}.json"


def store_count(record: Path, found: GraphCount) -> None:
    """A count into the cache; a read-only cache keeps nothing (the count is taken again next time)."""
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(found.to_json())
    except OSError:
        pass
