"""The shared `FeatureSplitter` on a runtime-free cut: a numpy body and a linear numpy head. What every
runtime's cut relies on must be able to fail here: shifted codes off the grid, rows that interact, a head
that is not the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.gradcam.cut_splitter import CodeGrid, FeatureSplitter, shifted_rows
from bench.gradcam.split import SplitUnavailable

SCALE, ZERO, TOP = 0.5, 3, 15  # a 4-bit grid: codes 0..15, feature = (code - 3) * 0.5
WEIGHTS = np.array([[1.0, -2.0, 0.5], [0.25, 1.5, -1.0]])  # (classes, channels) of the linear head


class NumpySplitter(FeatureSplitter):
    """A cut whose body maps the image to three channels and whose head is a 1x1 linear layer.

    `leak` adds `leak * row` to each row's logits until the head is made row-safe (a side input that
    encodes the batch position); `can_fall_back` says whether it can be; `offset` moves the full model's
    logits away from the head's."""

    WHAT = "the numpy cut"
    STEP_UNIT = " of codes"
    EXACT_CODES = True

    def __init__(
        self, quantized: bool = True, steps: int = 4, leak: float = 0.0, can_fall_back: bool = True, offset: float = 0.0
    ) -> None:
        super().__init__(Path("numpy.model"), "A", steps)
        self.quant = {"scale": SCALE, "zero_point": ZERO} if quantized else None
        self.leak, self.can_fall_back, self.offset = leak, can_fall_back, offset
        self.row_safe = False
        self.fed: list[np.ndarray] = []  # every batch the head was given

    @property
    def sides(self) -> list[str]:
        return ["image"]

    def _features(self, image: np.ndarray) -> np.ndarray:
        return np.concatenate([image[:, :1] * (k + 1) for k in range(3)], axis=1)  # (1, 3, h, w)

    def _dequantize(self, batch: np.ndarray) -> np.ndarray:
        return (batch.astype(np.float64) - ZERO) * SCALE if self.quant is not None else batch.astype(np.float64)

    def _logits(self, features: np.ndarray) -> np.ndarray:
        return np.einsum("ck,bkhw->bchw", WEIGHTS, features)

    def full_logits(self, image: np.ndarray) -> np.ndarray:
        features = self._features(image)
        if self.quant is not None:
            features = self._dequantize(np.clip(np.round(features / SCALE) + ZERO, 0, TOP))
        return self._logits(features) + self.offset

    def _run_body(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        features = self._features(image)
        if self.quant is None:
            return features.astype(np.float32), image
        return np.clip(np.round(features / SCALE) + ZERO, 0, TOP).astype(np.uint8), image

    def _run_head(self, batch: np.ndarray, sides: Any) -> np.ndarray:
        self.fed.append(batch.copy())
        logits = self._logits(self._dequantize(batch))
        if not self.row_safe:
            logits += self.leak * np.arange(len(batch))[:, None, None, None]
        return logits

    def _grid(self, cut: np.ndarray) -> CodeGrid:
        channels = cut.shape[0]
        return CodeGrid(
            codes=cut,
            low=0,
            high=TOP,
            step=np.full(channels, SCALE),
            features=((cut.astype(np.int64) - ZERO) * SCALE).astype(np.float32),
            feed=lambda codes: codes.astype(np.uint8),
            label="uint8 codes",
            record_codes=True,
        )

    def _rows_fallback(self) -> bool:
        if self.row_safe or not self.can_fall_back:
            return False
        self.row_safe = True
        return True

    def _row_note(self) -> str | None:
        return "head made row-safe" if self.row_safe else None


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 3.0, (1, 1, 4, 5)).astype(np.float32)


def test_shifted_codes_land_on_the_grid_and_are_clipped_to_its_range() -> None:
    splitter = NumpySplitter()
    image = _image()
    split = splitter.split(image, steps=2)
    codes = np.asarray(split.meta["codes"])
    assert codes.dtype == np.uint8 and codes.min() >= 0 and codes.max() <= TOP
    moved = np.clip(codes.astype(np.int64) + 2, 0, TOP)
    np.testing.assert_array_equal(np.asarray(split.meta["shifted_codes"]), moved)
    assert split.meta["clipped"] == pytest.approx(float(np.mean(moved - codes != 2))) and split.meta["clipped"] > 0
    np.testing.assert_array_equal(split.step, np.full(3, 2 * SCALE))
    np.testing.assert_array_equal(split.features, (codes.astype(np.float32) - ZERO) * SCALE)

    split.head_shifted(np.array([-1, 1]))
    fed = splitter.fed[-1]
    assert fed.dtype == np.uint8  # the head reads codes, never values between them
    np.testing.assert_array_equal(fed[0], codes)
    np.testing.assert_array_equal(fed[1, 1], moved[1])
    np.testing.assert_array_equal(fed[1, [0, 2]], codes[[0, 2]])  # only the row's own channel moves

    # a linear head: finite differences at unclipped pixels are the weights themselves
    shifted = split.head_shifted(np.array([-1, 0, 1, 2]))
    for k in range(3):
        free = moved[k] - codes[k] == 2
        slope = (shifted[k + 1] - shifted[0]) / split.step[k]
        np.testing.assert_allclose(slope[:, free], WEIGHTS[:, k : k + 1].repeat(free.sum(), axis=1))
    assert split.meta["kind"] == "uint8 codes of A, shift 2 steps" and split.meta["sides"] == ["image"]
    assert split.meta["max_abs_vs_model"] == 0.0


def test_shifted_rows_moves_only_the_named_channel_of_each_row() -> None:
    base, shifted = np.zeros((3, 2, 2)), np.ones((3, 2, 2))
    batch = shifted_rows(base, shifted, lambda b: b)(np.array([2, -1, 0]))
    assert batch.shape == (3, 3, 2, 2)
    assert batch[0, 2].all() and not batch[0, :2].any()
    assert not batch[1].any()
    assert batch[2, 0].all() and not batch[2, 1:].any()


def test_rows_that_interact_fall_back_once_and_say_so() -> None:
    splitter = NumpySplitter(leak=1.0)
    split = splitter.split(_image())
    assert splitter.row_safe and splitter.rows_checked
    assert split.meta["kind"] == "uint8 codes of A, shift 4 steps, head made row-safe"


@pytest.mark.parametrize("quantized", [True, False])
def test_rows_that_interact_are_refused_where_the_head_cannot_fall_back(quantized: bool) -> None:
    splitter = NumpySplitter(quantized=quantized, leak=1.0, can_fall_back=False)
    with pytest.raises(SplitUnavailable, match="different logits for identical rows"):
        splitter.split(_image())
    assert not splitter.rows_checked


def test_rows_are_checked_on_the_first_image_only() -> None:
    splitter = NumpySplitter()
    splitter.split(_image(0))
    splitter.leak = 1.0  # a later image is not checked again: the decision holds for the cut
    splitter.split(_image(1))
    assert not splitter.row_safe


def test_a_cut_at_codes_must_reproduce_the_model_exactly() -> None:
    with pytest.raises(SplitUnavailable, match=r"head of numpy.model cut at 'A' does not reproduce"):
        NumpySplitter(offset=1e-9).split(_image())


def test_a_float_cut_reproduces_the_model_within_the_tolerance_and_no_further() -> None:
    split = NumpySplitter(quantized=False, offset=1e-9).split(_image())
    assert str(split.meta["kind"]).startswith("float A, shift") and split.meta["sides"] == ["image"]
    with pytest.raises(SplitUnavailable, match="does not reproduce"):
        NumpySplitter(quantized=False, offset=1e-3).split(_image())


@pytest.mark.parametrize("steps", [0, -1, 1.5])
def test_the_step_must_be_a_positive_whole_number(steps: Any) -> None:
    with pytest.raises(SplitUnavailable, match=f"positive whole number of codes, got {steps}"):
        NumpySplitter(steps=steps)


def test_one_image_at_a_time_at_a_positive_step() -> None:
    splitter = NumpySplitter()
    with pytest.raises(SplitUnavailable, match=r"the numpy cut takes one image \(1, C, H, W\)"):
        splitter.split(np.zeros((2, 1, 4, 5), np.float32))
    with pytest.raises(SplitUnavailable, match="positive whole number, got 0"):
        splitter.split(_image(), steps=0)
