"""Seeded splits: the same items land in the same split on any machine and any file system order.

Splits are taken from the SORTED item names and a permutation seeded by the suite's split seed, in
the fixed order train, calibration, evaluation, so the three never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.data.request import SPLITS
from bench.errors import UsageError


def split_indices(
    total: int, sizes: Mapping[str, int], seed: int, split: str, where: str | Path | None = None
) -> np.ndarray:
    """Indices of one split from a seeded permutation of `total` items, in the fixed split order.

    `sizes` may name only some of the splits (a layout whose evaluation images live in their own
    folder splits the rest); `where` names the data in the error when there are too few items.
    """
    parts = [s for s in SPLITS if s in sizes]
    need = sum(sizes[s] for s in parts)
    if need > total:
        prefix = f"{where}: " if where is not None else ""
        raise UsageError(f"{prefix}splits need {need} items but the data has {total}")
    order = np.random.default_rng(seed).permutation(total)
    start = sum(sizes[s] for s in parts[: parts.index(split)])
    return np.sort(order[start : start + sizes[split]])


def pick(names: list[str], sizes: Mapping[str, int], seed: int, split: str, where: str | Path) -> list[str]:
    """The names of one split, chosen from the sorted names (file system order never matters)."""
    ordered = sorted(names)
    return [ordered[i] for i in split_indices(len(ordered), sizes, seed, split, where)]
