"""The splitter every runtime's graph cut fills in: one image's forward pass cut at the feature tensor A.

ONNX Runtime and OpenVINO cut their own graphs at A in different ways (an extracted ONNX body and head;
an IR rebuilt with OpenVINO's model API), but what they do with the two halves is the same, and it lives
here so that the two finite-difference cuts cannot drift apart:

- `split(image, steps)`: run the body once, take A at the cut, and hand the shared finite-difference
  code (bench/gradcam/split.py) a `FeatureSplit` whose head passes run the runtime's own head;
- a token tensor A (1, N, C) (a transformer layer) is shifted on its spatial grid (C, h, w) and every
  batch goes back to the head as tokens (bench/gradcam/tokens.py), so channel k is column k of the tokens;
- at a quantized A, shift channel k's *codes* by whole quantization steps, clipped to the code range
  (`CodeGrid` says how the runtime's quantizer maps codes to features and to what its head reads), so
  every head pass sees values the deployed model could produce; at a float A, the float step every
  float cut uses (`float_split`);
- check that the unshifted head reproduces the full model's logits (`check_head`), and on the first
  image that identical rows of one head call agree; where they do not, the runtime switches its head to
  a row-safe mode once (`_rows_fallback`) and the check runs again.

A runtime supplies only what is its own: running the body and the head, reading its quantizer's grid,
the full model's logits, and how it falls back when rows interact. Nothing here imports a runtime.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.errors import UsageError
from bench.gradcam import split as shared
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import FLOAT_STEP, SplitUnavailable, check_head, float_split
from bench.gradcam.tokens import spatial


@dataclass(frozen=True)
class CodeGrid:
    """A quantized A of one image on its quantizer's grid, as a runtime reads it from its own quantizer.

    `codes` are the integer codes (K, h, w), `low`/`high` the code range (shifted codes are clipped to
    it), `step` one code step per channel in the units of `features` (A dequantized, float32). `feed`
    turns codes into what the head reads at the cut (the codes themselves in the deployed dtype, or
    values on a FakeQuantize's input grid). `label` names the grid in the split's kind; with
    `record_codes` the split's meta keeps the fed codes and shifted codes (`codes`, `shifted_codes`)."""

    codes: np.ndarray
    low: Any
    high: Any
    step: np.ndarray
    features: np.ndarray
    feed: Callable[[np.ndarray], np.ndarray]
    label: str
    record_codes: bool = False


def shifted_rows(
    base: np.ndarray, shifted: np.ndarray, run_head: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """`FeatureSplit.head_shifted` for a head fed `base` (K, h, w): row r of a call with channels [..k..]
    holds `base` with channel k taken from `shifted` (-1: nothing shifted), all rows in one head call."""

    def head_shifted(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        batch = np.repeat(base[None], len(rows), axis=0)
        for r, k in enumerate(rows):
            if k >= 0:
                batch[r, k] = shifted[k]
        return run_head(batch)

    return head_shifted


class FeatureSplitter(ABC):
    """One runtime's graph cut at one feature tensor; `split(image, steps)` cuts one image.

    Subclasses set `quant` (None for a float A) and fill in the hooks below; the class attributes word
    the runtime's own messages and tolerance."""

    WHAT: ClassVar[str] = "the cut"  # names the splitter in "... takes one image" errors
    STEP_UNIT: ClassVar[str] = ""  # words after "a positive whole number" in the constructor's step error
    HEAD_RTOL: ClassVar[float] = 1e-5  # |head - full| allowed, relative to max |logits|
    EXACT_CODES: ClassVar[bool] = False  # a cut at codes must reproduce the model exactly (limit 0)

    quant: dict[str, Any] | None

    def __init__(self, path: Path, tensor: str, steps: int = 4, float_step: float = FLOAT_STEP) -> None:
        if int(steps) != steps or steps < 1:
            raise SplitUnavailable(
                f"the finite-difference step must be a positive whole number{self.STEP_UNIT}, got {steps}"
            )
        self.path, self.tensor, self.steps, self.float_step = Path(path), tensor, int(steps), float_step
        self.rows_checked = False
        self.tokens = False  # the cut tensor is (1, N, C) tokens, split on its grid (set by `split`)

    # --- what each runtime fills in ---

    @property
    @abstractmethod
    def sides(self) -> list[str]:
        """The side tensors the head reads besides A (recorded in every split's meta)."""

    @abstractmethod
    def full_logits(self, image: np.ndarray) -> np.ndarray:
        """The full model's logits for one image: what the unshifted head must reproduce."""

    @abstractmethod
    def _run_body(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        """The body on one image: A at the cut (1, K, h, w), or (1, N, C) tokens, and the side values the
        head needs."""

    @abstractmethod
    def _run_head(self, batch: np.ndarray, sides: Any) -> np.ndarray:
        """The head on a batch of cut tensors (in the cut's own layout), with one image's side values."""

    @abstractmethod
    def _grid(self, cut: np.ndarray) -> CodeGrid:
        """A quantized A (K, h, w) read on `quant`'s grid: its codes, scale and zero point (see `CodeGrid`)."""

    @abstractmethod
    def _rows_fallback(self) -> bool:
        """Identical rows disagreed: switch the head to its row-safe mode and say True, or say False when
        it already runs so (the rows check then raises)."""

    @abstractmethod
    def _row_note(self) -> str | None:
        """What the split's kind adds when the head runs in its row-safe mode; None otherwise."""

    def _meta(self) -> dict[str, object]:
        """Entries every split of this cut records besides the shared ones."""
        return {"sides": list(self.sides)}

    # --- shared ---

    def split(self, image: np.ndarray, steps: int | None = None) -> FeatureSplit:
        """Cut the forward pass of one (1, C, H, W) image at a step size (default: the splitter's); checks
        the unshifted head against the full model, and on the first image that identical rows agree."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 4 or image.shape[0] != 1:
            raise SplitUnavailable(f"{self.WHAT} takes one image (1, C, H, W), got shape {image.shape}")
        steps = self.steps if steps is None else int(steps)
        if steps < 1:
            raise SplitUnavailable(f"the finite-difference step must be a positive whole number, got {steps}")
        cut, sides = self._run_body(image)
        if cut.ndim not in (3, 4):
            raise SplitUnavailable(
                f"'{self.tensor}' is not a (1, K, h, w) feature map or (1, N, C) tokens (shape {cut.shape})"
            )
        self.tokens = cut.ndim == 3
        try:  # tokens are shifted on their grid and handed to the head as tokens again
            cut, layout = spatial(cut, (image.shape[2], image.shape[3]), self.tensor)
        except UsageError as exc:
            raise SplitUnavailable(str(exc)) from exc

        def run_head(batch: np.ndarray) -> np.ndarray:
            return self._run_head(layout(batch), sides)

        if self.quant is not None:
            split = self._codes_split(cut[0], run_head, steps)
        else:
            split = self._float_split(cut[0], run_head, steps)
        self._check(image, split)
        if not self.rows_checked:
            self._check_rows(split)
        note = self._row_note()
        if note:
            split.meta["kind"] = f"{split.meta.get('kind', '')}, {note}"
        return split

    def _check_rows(self, split: FeatureSplit) -> None:
        """Identical rows of one head call must give identical logits; where they do not (a side input whose
        values encode the batch position), the runtime falls back to its row-safe head once and checks again.
        The check is looked up on its module, so a test can take it away and show what it guards against."""
        try:
            shared.check_rows_independent(split, self.tensor)
        except SplitUnavailable:
            if not self._rows_fallback():
                raise
            shared.check_rows_independent(split, self.tensor)
        self.rows_checked = True

    def _codes_split(self, cut: np.ndarray, run_head: Callable[[np.ndarray], np.ndarray], steps: int) -> FeatureSplit:
        """A quantized A with channel k's codes moved by `steps` whole steps, clipped to the code range."""
        grid = self._grid(cut)
        codes = np.asarray(grid.codes, dtype=np.int64)
        moved = np.clip(codes + steps, grid.low, grid.high)
        clipped = float(np.mean(moved - codes != steps))
        base, shifted = grid.feed(codes), grid.feed(moved)
        return FeatureSplit(
            features=grid.features,
            step=steps * np.asarray(grid.step, dtype=np.float64),
            head_shifted=shifted_rows(base, shifted, run_head),
            meta={
                "kind": f"{grid.label} of {self.tensor}, shift {steps} steps",
                "tensor": self.tensor,
                "clipped": clipped,
                **({"codes": base, "shifted_codes": shifted} if grid.record_codes else {}),
                **self._meta(),
            },
        )

    def _float_split(
        self, features: np.ndarray, run_head: Callable[[np.ndarray], np.ndarray], steps: int
    ) -> FeatureSplit:
        return float_split(features, run_head, steps, self.tensor, self.float_step, self._meta())

    def _check(self, image: np.ndarray, split: FeatureSplit) -> float:
        """The unshifted head must be the full model (exactly for codes where `EXACT_CODES`, else within
        `HEAD_RTOL`); returns max |logits| of the full model."""
        full = self.full_logits(image)
        scale = float(np.max(np.abs(full)))
        exact = self.EXACT_CODES and self.quant is not None
        check_head(split, full, self.tensor, self.path.name, 0.0 if exact else self._head_rtol() * max(1.0, scale))
        return scale

    def _head_rtol(self) -> float:
        """|head - full| allowed, relative to max |logits| (`HEAD_RTOL`; a runtime may judge by its graph)."""
        return self.HEAD_RTOL
