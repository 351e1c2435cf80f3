"""Suites: fixed data, splits and classes, defined by TOML files in the `suites/` folder.

A suite is everything that must be identical for two runs to be comparable: the data source, the
class table, the input size and normalization, and the seeded split into train / calibration /
evaluation. Loaders for each data layout live in `LOADERS`, keyed by the suite's `source`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.errors import UsageError, unknown_name
from bench.synthetic import NucleiParams, generate_nuclei

SPLITS = ("train", "calibration", "evaluation")


@dataclass(frozen=True)
class SplitData:
    """Images (N, C, H, W) float32 in [0, 1] before normalization, masks (N, H, W) int64."""

    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    source: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    in_channels: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split_sizes: dict[str, int]
    split_seed: int
    seed: int
    background_class: int | None = None
    ignore_label: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def foreground_classes(self) -> list[int]:
        """Classes whose Dice is averaged into the headline `dice` column."""
        return [c for c in range(self.num_classes) if c != self.background_class]

    def with_seed(self, seed: int) -> "Suite":
        return replace(self, seed=seed)

    def config(self) -> dict[str, Any]:
        """Everything that determines the data, for cache keys."""
        return {
            "name": self.name, "source": self.source, "classes": self.classes,
            "in_channels": self.in_channels, "input_size": self.input_size, "mean": self.mean,
            "std": self.std, "split_sizes": self.split_sizes, "split_seed": self.split_seed,
            "seed": self.seed, "ignore_label": self.ignore_label, "options": self.options,
        }

    def load(self, split: str) -> SplitData:
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
        return _load_cached(self, split)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Model input from [0, 1] images, with the suite's per-channel mean and std."""
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return ((images - mean) / std).astype(np.float32)


_CACHE: dict[tuple[str, str], SplitData] = {}


def _load_cached(suite: Suite, split: str) -> SplitData:
    from bench.cache import stable_hash

    key = (stable_hash(suite.config()), split)
    if key not in _CACHE:
        loader = LOADERS.get(suite.source)
        if loader is None:
            raise unknown_name("suite source", suite.source, list(LOADERS))
        _CACHE[key] = loader(suite, split)
    return _CACHE[key]


def split_indices(total: int, sizes: dict[str, int], seed: int, split: str) -> np.ndarray:
    """Indices of one split from a seeded permutation of `total` items, in a fixed split order."""
    need = sum(sizes[s] for s in SPLITS)
    if need > total:
        raise UsageError(f"splits need {need} items but the data has {total}")
    order = np.random.default_rng(seed).permutation(total)
    start = sum(sizes[s] for s in SPLITS[: SPLITS.index(split)])
    return np.sort(order[start : start + sizes[split]])


def _load_synthetic_nuclei(suite: Suite, split: str) -> SplitData:
    params = NucleiParams(height=suite.input_size[0], width=suite.input_size[1], **suite.options)
    total = sum(suite.split_sizes[s] for s in SPLITS)
    indices = split_indices(total, suite.split_sizes, suite.split_seed, split)
    images, masks = generate_nuclei(suite.seed, indices, params)
    return SplitData(images=images, masks=masks.astype(np.int64))


LOADERS: dict[str, Callable[[Suite, str], SplitData]] = {
    "synthetic-nuclei": _load_synthetic_nuclei,
}


def _parse(path: Path, text: str) -> Suite:
    try:
        raw = tomllib.loads(text)
        splits = raw["splits"]
        classes = tuple(raw["classes"])
        return Suite(
            name=raw["name"],
            description=raw.get("description", ""),
            source=raw["source"],
            classes=classes,
            colors=tuple(tuple(c) for c in raw.get("colors", [[0, 0, 0]] * len(classes))),
            in_channels=int(raw["in_channels"]),
            input_size=tuple(raw["input_size"]),
            mean=tuple(raw["mean"]),
            std=tuple(raw["std"]),
            split_sizes={s: int(splits[s]) for s in SPLITS},
            split_seed=int(splits["seed"]),
            seed=int(raw.get("seed", 0)),
            background_class=raw.get("background_class"),
            ignore_label=raw.get("ignore_label"),
            options=dict(raw.get("options", {})),
            path=path,
        )
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: invalid suite file ({type(exc).__name__}: {exc})") from exc


def _suite_files() -> dict[str, tuple[Path, str]]:
    files: dict[str, tuple[Path, str]] = {}
    for entry in resources.files("suites").iterdir():
        if entry.name.endswith(".toml"):
            files[entry.name[: -len(".toml")]] = (Path(str(entry)), entry.read_text())
    return files


def list_suites() -> list[str]:
    return sorted(_suite_files())


def get_suite(name: str) -> Suite:
    """A suite by name (a file `suites/<name>.toml`) or by path to a TOML file."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"suite file '{name}' does not exist")
        return _parse(path, path.read_text())
    files = _suite_files()
    if name not in files:
        raise unknown_name("suite", name, list(files))
    return _parse(*files[name])
