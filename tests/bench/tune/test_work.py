"""What a tune asks of a worker besides a cell's stages, on a stand-in backend: the quantizable layers and
their SQNR from the cell's own prepare context (on the first tuning images, normalized), and accuracy
control scored on the tuning split's truth by the metric segbench's rows use."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import bench.backend
from bench.backend import AccuracyControlResult, QuantLayer
from bench.data.request import SplitData
from bench.run import stages
from bench.run.isolation import WorkerContext
from bench.tune import work

# four 1x2x2 tuning images; the truth: the object is the left column of the first two, the right of the others
MASKS = np.array([[[1, 0], [1, 0]]] * 2 + [[[0, 1], [0, 1]]] * 2, np.int64)
RIGHT = np.stack([1 - MASKS, MASKS], axis=1).astype(np.float32)  # logits (4, 2, 2, 2) that find it exactly
WRONG = RIGHT[:, ::-1]  # every pixel the other class


class _Suite:
    classes = ("background", "object")
    num_classes = 2
    foreground_classes = [1]
    ignore_label = None

    def load(self, split: str) -> SplitData:
        assert split == "tuning"
        return SplitData(images=np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1) * np.ones((1, 1, 2, 2)), masks=MASKS)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        return images / 2


class _Backend:
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def quantizable_layers(self, ctx: str) -> list[QuantLayer]:
        self.seen["layers"] = ctx
        return [QuantLayer("enc.0", "Conv", "node_conv")]

    def layer_sqnr(self, ctx: str, images: np.ndarray) -> dict[str, float]:
        self.seen["sqnr"] = (ctx, images)
        return {"enc.0": 31.5}

    def accuracy_control(
        self, ctx: str, images: np.ndarray, score: Any, max_drop: float, out_dir: Path
    ) -> AccuracyControlResult:
        self.seen["control"] = (ctx, images, max_drop, out_dir)
        everything = np.arange(4)
        subsets = [score(RIGHT[2:], np.array([2, 3])), score(RIGHT[2:], np.array([0, 1]))]
        notes = " ".join(map(str, subsets))
        return AccuracyControlResult(
            "stand-in", ("enc.0",), score(RIGHT, everything), score(WRONG, everything), 0.5, notes=notes
        )


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> _Backend:
    found = _Backend()
    monkeypatch.setattr(bench.backend, "get_backend", lambda name: found)
    monkeypatch.setattr(stages, "prepare_context", lambda spec: f"context of {spec.backend}")
    return found


def _spec() -> SimpleNamespace:
    return SimpleNamespace(backend="stand-in", split="tuning", threshold=0.5, load_suite=_Suite)


def _context(said: list[str]) -> WorkerContext:
    return WorkerContext(state={}, stage=said.append)


def test_the_layers_come_from_the_cells_own_prepare_context(backend: _Backend):
    said: list[str] = []
    assert work.quantizable_layers(_context(said), _spec()) == [QuantLayer("enc.0", "Conv", "node_conv")]  # type: ignore[arg-type]
    assert backend.seen["layers"] == "context of stand-in" and said == ["list layers"]


def test_the_sqnr_is_measured_on_the_first_tuning_images_normalized(backend: _Backend):
    said: list[str] = []
    assert work.layer_sqnr(_context(said), _spec(), images=2) == {"enc.0": 31.5}  # type: ignore[arg-type]
    ctx, images = backend.seen["sqnr"]
    assert ctx == "context of stand-in" and images[:, 0, 0, 0].tolist() == [0.0, 0.5] and said == ["layer SQNR"]


def test_accuracy_control_scores_logits_against_the_truth_of_the_images_it_names(backend: _Backend, tmp_path: Path):
    said: list[str] = []
    result = work.accuracy_control(_context(said), _spec(), "dice", 0.01, tmp_path)  # type: ignore[arg-type]
    assert result is not None and (result.float_score, result.quantized_score) == (1.0, 0.0)  # exact, then inverted
    assert result.notes == "1.0 0.0"  # a subset is scored against the masks of the images it names
    ctx, images, max_drop, out_dir = backend.seen["control"]
    assert images.shape == (4, 1, 2, 2) and images[:, 0, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.5]
    assert (ctx, max_drop, out_dir, said) == ("context of stand-in", 0.01, tmp_path, ["accuracy control"])
