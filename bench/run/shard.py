"""Shards: a stable, balanced part of a run's matrix, for one job of a CI job matrix (`--shard K/N`).

A shard takes whole comparison groups (suite, model, device, batch size: `CellSpec.group`), never
single cells: the backends of a group are timed interleaved, and `speedup_vs_fp32` is a ratio to the
group's fp32 reference measured in the same run, so a group split over two jobs would lose both.
`segbench merge` (bench/run/merge.py) joins the shards' folders into one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.cache import stable_hash
from bench.errors import UsageError


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based: shard K of N
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(f"--shard '{self}' is not valid; expected K/N with 1 <= K <= N (e.g. 2/3)")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'2/3' -> Shard(2, 3); anything else is a one-line usage error."""
    index, slash, count = text.strip().partition("/")
    try:
        if not slash:
            raise ValueError(text)
        return Shard(int(index), int(count))
    except ValueError:
        raise UsageError(f"--shard '{text}' is not valid; expected K/N with 1 <= K <= N (e.g. 2/3)") from None


def group_key(group: Iterable[Any]) -> str:
    """A comparison group's identity as text (`suite/model/device/batch size`, and `/HxW` at a shape sweep's
    other size), as the shard records say it: a group at the suite's own size keeps the key it had before
    sweeps, so shards of older runs merge with newer ones."""
    parts = [str(part) for part in group]
    if len(parts) == 5 and not parts[-1]:
        parts.pop()
    return "/".join(parts)


def assign_groups(groups: Iterable[str], count: int) -> dict[str, int]:
    """Each group (by `group_key`) -> its shard, 1..count: the groups sorted by a content hash of their
    identity, then dealt round-robin.

    Why not `hash mod N`, which is stable too and keeps a group's shard when other groups come or go: its
    shard sizes are binomial, so small matrices come out lopsided (3 groups over 3 shards leave a shard
    empty 7 times in 9) and large ones uneven by about sqrt(groups / N). Dealing the hash-sorted groups
    gives sizes that differ by at most one and no empty shard while there are at least N groups. What it
    costs, that adding a group may move others to another shard, does not matter here: every job of a CI
    matrix computes the assignment from the same matrix, and the merge reads rows, not assignments.
    The hash is SHA-256 of the identity (`bench.cache.stable_hash`), the same on every machine and Python
    run (the built-in `hash()` of a string is salted per process).
    """
    if count < 1:
        raise UsageError(f"a shard count must be at least 1 (got {count})")
    ordered = sorted(set(groups), key=lambda key: (stable_hash(key), key))
    return {key: i % count + 1 for i, key in enumerate(ordered)}


@dataclass(frozen=True)
class ShardPlan:
    """Which comparison groups of the whole matrix one run measures: all of them when it is not sharded."""

    shard: Shard | None
    matrix: Mapping[tuple[Any, ...], tuple[str, ...]]  # every group of the matrix, in run order -> its cell ids
    groups: tuple[tuple[Any, ...], ...]  # the groups this run measures, in run order

    @classmethod
    def of(cls, shard: Shard | None, matrix: Mapping[tuple[Any, ...], tuple[str, ...]]) -> ShardPlan:
        if shard is None:
            return cls(None, dict(matrix), tuple(matrix))
        owner = assign_groups((group_key(group) for group in matrix), shard.count)
        return cls(shard, dict(matrix), tuple(group for group in matrix if owner[group_key(group)] == shard.index))

    def record(self) -> dict[str, Any]:
        """env.json's `shard` entry (nothing for a whole run): what `segbench merge` and the report read."""
        if self.shard is None:
            return {}
        return {
            "shard": {
                "index": self.shard.index,
                "count": self.shard.count,
                "groups": [group_key(group) for group in self.groups],
                "matrix": {group_key(group): list(cells) for group, cells in self.matrix.items()},
            }
        }

    def note(self) -> str:
        """The line a sharded run prints (an empty shard is valid, and says so)."""
        return describe_shard(self.record()["shard"]) if self.shard is not None else ""


def describe_shard(record: Mapping[str, Any]) -> str:
    """One line from env.json's `shard` entry: which part of the matrix the run measured."""
    shard, total, groups = f"{record['index']}/{record['count']}", len(record["matrix"]), record["groups"]
    if not groups:
        return (
            f"shard {shard}: no group of this matrix falls to it ({total} comparison group(s) over "
            f"{record['count']} shards); nothing to measure, the folder records the shard for segbench merge"
        )
    return f"shard {shard}: {len(groups)} of the matrix's {total} comparison group(s): {', '.join(groups)}"
