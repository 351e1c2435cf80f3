"""The fp32 reference logits: computed once per checkpoint, suite, split and code, cached as .npy under
the cache root, and read back without loading the model again. The checkpoint's loading and the model's
forward pass are stand-ins that count their calls."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.run.references import reference_outputs

LOGITS = np.arange(2 * 2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2, 2)


class _Suite:
    """What the reference needs of a suite: its identity, a split's images and their normalization."""

    def __init__(self, name: str = "toy") -> None:
        self.name = name
        self.loaded: list[str] = []

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "input_size": (2, 2)}

    def load(self, split: str) -> SimpleNamespace:
        self.loaded.append(split)
        return SimpleNamespace(images=np.ones((2, 1, 2, 2), np.float32))

    def normalize(self, images: np.ndarray) -> np.ndarray:
        return images * 2


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    import bench.training.checkpoints as checkpoints
    import bench.training.trainer as trainer

    seen: list[tuple[str, Any]] = []

    def load_checkpoint(model_name: str, suite: _Suite, path: Path) -> tuple[str, dict[str, Any]]:
        seen.append(("load", model_name))
        return "model", {}

    def predict_logits(model: str, images: np.ndarray) -> np.ndarray:
        seen.append(("predict", images))
        return LOGITS

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(checkpoints, "load_checkpoint", load_checkpoint)
    monkeypatch.setattr(trainer, "predict_logits", predict_logits)
    return seen


def _checkpoint(tmp_path: Path, content: bytes = b"weights") -> Path:
    path = tmp_path / "unet--toy.pt"
    path.write_bytes(content)
    return path


def test_the_logits_are_computed_once_as_float32_and_read_from_the_cache_after(tmp_path: Path, calls: list):
    checkpoint, suite = _checkpoint(tmp_path), _Suite()
    path = reference_outputs(suite, "unet", checkpoint)  # type: ignore[arg-type]
    assert path.parent == tmp_path / "cache" / "reference"
    assert path.name.startswith("unet--toy--") and path.name.endswith(".logits.npy") and "evaluation" not in path.name
    stored = np.load(path)
    assert stored.dtype == np.float32 and (stored == LOGITS).all()
    assert [c[0] for c in calls] == ["load", "predict"] and suite.loaded == ["evaluation"]
    assert (calls[1][1] == 2).all()  # the model saw the normalized images
    assert reference_outputs(suite, "unet", checkpoint) == path  # type: ignore[arg-type]
    assert len(calls) == 2 and suite.loaded == ["evaluation"]  # a hit loads nothing


def test_another_split_suite_or_checkpoint_is_another_file(tmp_path: Path, calls: list):
    checkpoint = _checkpoint(tmp_path)
    evaluation = reference_outputs(_Suite(), "unet", checkpoint)  # type: ignore[arg-type]
    tuning = reference_outputs(_Suite(), "unet", checkpoint, split="tuning")  # type: ignore[arg-type]
    assert tuning.name.startswith("unet--toy--tuning--") and tuning != evaluation
    assert reference_outputs(_Suite("other"), "unet", checkpoint) != evaluation  # type: ignore[arg-type]
    retrained = reference_outputs(_Suite(), "unet", _checkpoint(tmp_path, b"new weights"))  # type: ignore[arg-type]
    assert retrained != evaluation and len(calls) == 8  # four misses: load and predict each
