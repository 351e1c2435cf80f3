"""Token layers: a transformer layer's (B, N, C) output explained on its spatial grid (B, C, h, w).

Grad-CAM weighs the channels of a feature map A (B, K, h, w) and upsamples the weighted sum to the input.
A transformer layer (a SegFormer block, the LayerNorm that ends a stage, a projection over tokens) outputs
tokens (B, N, C) instead: the grid flattened in raster order, as `x.flatten(2).transpose(1, 2)` makes it.
Its grid (h, w) is inferred from the input size (H, W): the smallest stride s with
ceil(H/s) * ceil(W/s) == N (a stride-s patch embedding with padding gives exactly that grid; as s grows
neither side grows, so no other grid has N tokens). A token count that fits no grid is one line naming the
layer and N. A layer whose output is a tuple (a block returning its hidden states and attention weights)
is explained by its first element.

This is the one place that knows the layout: the autograd hook (bench/gradcam/method.py) stores the grid
view A and hands downstream tokens computed from A, so gradients reach A; each runtime's graph cut turns
the cut tensor into the grid for the shared finite-difference code and every shifted batch back into
tokens for its head (`spatial`). Every function works on torch tensors and numpy arrays alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from bench.errors import UsageError

T = TypeVar("T")  # a torch tensor or a numpy array


def first_output(output: Any) -> Any:
    """The tensor a layer's output is explained by: itself, or the first element of a tuple or list."""
    return output[0] if isinstance(output, (tuple, list)) and output else output


def with_first(output: Any, value: Any) -> Any:
    """`output` with the tensor `first_output` took replaced by `value` (the same kind of container)."""
    if isinstance(output, (tuple, list)) and output:
        return type(output)([value, *output[1:]])
    return value


def token_grid(tokens: int, input_size: tuple[int, int], layer: str) -> tuple[int, int]:
    """(h, w) of N = `tokens` tokens of an (H, W) input: the smallest stride s with ceil(H/s) * ceil(W/s) == N."""
    height, width = (int(v) for v in input_size)
    for stride in range(1, max(height, width) + 1):
        grid = (math.ceil(height / stride), math.ceil(width / stride))
        if grid[0] * grid[1] == tokens:
            return grid
        if grid[0] * grid[1] < tokens:  # the count only falls as the stride grows
            break
    raise UsageError(
        f"Grad-CAM layer '{layer}' outputs {tokens} tokens, which fit no grid of the {height}x{width} "
        f"input (ceil({height}/s) x ceil({width}/s) for any stride s)"
    )


def _contiguous(value: T) -> T:
    return np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value.contiguous()  # type: ignore[attr-defined,return-value]


def to_grid(tokens: T, grid: tuple[int, int]) -> T:
    """(B, N, C) tokens -> (B, C, h, w) feature map (a new tensor; gradients flow through it)."""
    batch, _, channels = tokens.shape  # type: ignore[attr-defined]
    return _contiguous(tokens.swapaxes(1, 2).reshape(batch, channels, *grid))  # type: ignore[attr-defined]


def to_tokens(features: T) -> T:
    """(B, C, h, w) feature map -> (B, N, C) tokens in raster order (a new tensor)."""
    batch, channels = features.shape[:2]  # type: ignore[attr-defined]
    return _contiguous(features.reshape(batch, channels, -1).swapaxes(1, 2))  # type: ignore[attr-defined]


def like(features: T, original: Any) -> T:
    """A batch of feature maps (B, K, h, w) in the layout of `original` (a layer's output tensor): tokens
    when it is (B, N, C), else the feature maps themselves."""
    return to_tokens(features) if getattr(original, "ndim", 4) == 3 else features


def spatial(value: T, input_size: tuple[int, int], layer: str) -> tuple[T, Callable[[Any], Any]]:
    """A layer's output tensor as a feature map (B, K, h, w), and the function that puts a batch of such
    maps back into the layer's own layout (what the rest of the network reads). Raises `UsageError` for
    anything but (B, K, h, w) maps or (B, N, C) tokens."""
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) == 4:
        return value, lambda batch: batch
    if len(shape) == 3:
        return to_grid(value, token_grid(int(shape[1]), input_size, layer)), to_tokens
    raise UsageError(
        f"Grad-CAM layer '{layer}' must output a (B, K, h, w) feature map or (B, N, C) tokens "
        f"(of a tuple, its first element), got {type(value).__name__}{shape}"
    )
