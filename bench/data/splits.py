"""Seeded splits: the same items land in the same split on any machine and any file system order.

Splits are taken from the SORTED item names and a permutation seeded by the suite's split seed, in
the fixed order train, calibration, evaluation, so the three never overlap.

A count may also be a fraction of the items the split draws from (its pool: the data set, or for CamVid
the split's folder) or "all" the items the other splits of its pool leave, so one suite file fits a
shared subset and the full data set; `resolve_counts` turns them into integers once the pool is listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.data.request import SPLITS, Count
from bench.errors import UsageError

ALL = "all"
COUNT_HELP = 'an integer >= 0, a fraction 0 < f <= 1 of the items the split draws from, or "all"'


def is_count(value: object) -> bool:
    """An integer >= 0, a fraction 0 < f <= 1, or "all" (a bool is not a count)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, float):
        return 0.0 < value <= 1.0
    return value == ALL


def parse_count(text: str) -> Count:
    """A count from the command line, as a suite file would give it: "40" is 40 items, "0.8" or "1.0" a
    fraction, "all" the rest; ValueError for anything else."""
    text = text.strip()
    value: Count
    if text == ALL:
        return ALL
    try:
        value = int(text)
    except ValueError:
        value = float(text)  # ValueError when it is no number either
    if not is_count(value):
        raise ValueError(text)
    return value


def share(count: Count, total: int) -> int:
    """A count of `total` items: an integer as it is, a fraction rounded down but at least 1, "all" all."""
    if count == ALL:
        return total
    if isinstance(count, float):
        return max(1, math.floor(count * total + 1e-9))  # 0.29 * 100 is 28.999...: 29
    assert isinstance(count, int)
    return count


def resolve_counts(counts: Mapping[str, Count], pools: Mapping[str, tuple[Path, int]]) -> dict[str, int]:
    """Integer counts for the splits drawn from the data: `pools` gives each split of `counts` its pool
    (the folder it draws from) and the pool's size. A fraction takes that share of its pool (rounded
    down, at least 1); "all" what the other splits of its pool leave (the caller allows one per pool).
    Raises UsageError, naming the folder, when the other splits already need more than the pool holds."""
    sizes = {split: share(count, pools[split][1]) for split, count in counts.items() if count != ALL}
    for split, count in counts.items():
        if count == ALL:
            folder, total = pools[split]
            need = sum(sizes[s] for s in counts if s != split and pools[s][0] == folder)
            if need > total:
                raise UsageError(f"{folder}: splits need {need} items but the data has {total}")
            sizes[split] = total - need
    return {s: sizes[s] for s in SPLITS if s in sizes}


def shared_all(counts: Mapping[str, Count], pool_of: Mapping[str, Path]) -> tuple[str, str] | None:
    """Two splits that both take "all" of one pool (which cannot be), or None."""
    takers = [s for s in SPLITS if counts.get(s) == ALL and s in pool_of]
    for i, first in enumerate(takers):
        for second in takers[i + 1 :]:
            if pool_of[first] == pool_of[second]:
                return first, second
    return None


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
