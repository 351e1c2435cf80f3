"""The fp32 reference every backend is measured against: eager logits of the float checkpoint on the
evaluation split, computed once in the parent and cached beside the checkpoint."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.cache import atomic_write_bytes, cache_root, code_digest, file_digest, library_versions, stable_hash
from bench.data.suite import Suite
from bench.models import get_model_entry


def reference_outputs(suite: Suite, model_name: str, checkpoint: Path, split: str = "evaluation") -> Path:
    """fp32 eager logits (N, C, H, W) on `split` (evaluation; tuning for `segbench tune`), as a .npy
    file: the reference every backend's predictions and output SQNR are measured against."""
    from bench.training.checkpoints import load_checkpoint
    from bench.training.trainer import predict_logits

    key = stable_hash(
        {
            "checkpoint": file_digest(checkpoint),
            "suite": suite.config(),
            "split": split,
            "code": code_digest("bench.training.trainer", get_model_entry(model_name).module),
            "libraries": library_versions(),
        }
    )
    label = "" if split == "evaluation" else f"{split}--"
    path = cache_root() / "reference" / f"{checkpoint.stem}--{label}{key}.logits.npy"
    if path.exists():
        return path
    model, _ = load_checkpoint(model_name, suite, checkpoint)
    logits = predict_logits(model, suite.normalize(suite.load(split).images)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, logits)
    atomic_write_bytes(path, buffer.getvalue())
    return path
