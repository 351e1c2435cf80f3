"""What every loader shares: the split record, seeded splits, and file-backed loading with a cache.

Splits are taken from the SORTED item names and a permutation seeded by the suite's split seed, so
the same files land in the same split on any machine and any file system order. Decoded splits are
cached under `cache_root()/datasets/`; the key covers the suite's config, the split, the loader
code and the (name, size, mtime) of every file read, so an edited file or loader is never served stale.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.suite import Suite

SPLITS = ("train", "calibration", "evaluation")


@dataclass(frozen=True)
class SplitData:
    """Images (N, C, H, W) float32 in [0, 1] before normalization, masks (N, H, W) int64."""

    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def split_indices(total: int, sizes: dict[str, int], seed: int, split: str, where: str | Path | None = None) -> np.ndarray:
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


def pick(names: list[str], sizes: dict[str, int], seed: int, split: str, where: str | Path) -> list[str]:
    """The names of one split, chosen from the sorted names (file system order never matters)."""
    ordered = sorted(names)
    return [ordered[i] for i in split_indices(len(ordered), sizes, seed, split, where)]


@dataclass(frozen=True)
class Item:
    """One image and the mask file(s) whose union (or label map) is its ground truth."""

    name: str
    image: Path
    masks: tuple[Path, ...]

    def files(self) -> tuple[Path, ...]:
        return (self.image, *self.masks)


def require_dir(path: Path, suite: "Suite", what: str = "data folder") -> Path:
    if not path.is_dir():
        hint = " (check --data-dir or SEGBENCH_DATA)" if path == suite.data_dir else ""
        raise UsageError(f"{path}: {what} of suite '{suite.name}' does not exist{hint}")
    return path


def data_root(suite: "Suite") -> Path:
    """The suite's resolved data folder, which must exist."""
    if suite.data_dir is None:
        raise UsageError(f"suite '{suite.name}' reads files but has no data folder; pass --data-dir")
    return require_dir(suite.data_dir, suite)


@dataclass(frozen=True)
class FileDataset:
    """A loader (`LOADERS` value) for data on disk, built from a layout's two functions.

    list_items(suite, split) -> the split's items, in a fixed order (raise UsageError for missing
        folders, images without masks, and too few items);
    read_item(suite, item) -> (image (C, H, W) uint8 or float32 in [0, 1], mask (H, W) int64),
        already at the suite's input size and with class indices (void = ignore_label);
    check(suite) -> validate layout-specific suite options when the suite file is read;
    modules: the loader's source modules, whose content is part of the cache key.
    """

    list_items: Callable[["Suite", str], list[Item]]
    read_item: Callable[["Suite", Item], tuple[np.ndarray, np.ndarray]]
    check: Callable[["Suite"], None] | None = None
    modules: tuple[str, ...] = ()

    def __call__(self, suite: "Suite", split: str) -> SplitData:
        items = self.list_items(suite, split)
        path = self.cache_path(suite, split, items)
        if path.is_file():
            try:
                with np.load(path) as cached:
                    return SplitData(images=to_unit(cached["images"]), masks=cached["masks"].astype(np.int64))
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is rebuilt below
        pairs = [self.read_item(suite, item) for item in items]
        raw_images = _stack_images([image for image, _ in pairs], suite.in_channels, suite.input_size)
        masks = (np.stack([mask for _, mask in pairs]) if pairs else np.zeros((0, *suite.input_size))).astype(np.int64)
        _write_cache(path, raw_images, masks)
        return SplitData(images=to_unit(raw_images), masks=masks)

    def cache_path(self, suite: "Suite", split: str, items: list[Item]) -> Path:
        from bench.cache import cache_root, file_digest, stable_hash

        files = []
        for item in items:
            for f in item.files():
                try:
                    st = f.stat()
                except OSError as exc:
                    raise UsageError(f"{f}: cannot read file ({exc.strerror})") from exc
                files.append((str(f), st.st_size, st.st_mtime_ns))
        code = [file_digest(Path(_module_file(m))) for m in (__name__, "bench.datasets.images", *self.modules)]
        key = stable_hash({"suite": suite.config(), "split": split, "files": sorted(files), "code": code})
        return cache_root() / "datasets" / f"{suite.name}--{split}--{key}.npz"


def _module_file(name: str) -> str:
    import importlib

    return importlib.import_module(name).__file__ or ""


def to_unit(images: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from the cached form (uint8 keeps the cache four times smaller, exactly)."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return images.astype(np.float32)


def _stack_images(images: list[np.ndarray], channels: int, size: tuple[int, int]) -> np.ndarray:
    if not images:
        return np.zeros((0, channels, *size), np.uint8)
    if all(image.dtype == np.uint8 for image in images):
        return np.stack(images)
    return np.stack([to_unit(image) for image in images])


def _write_cache(path: Path, images: np.ndarray, masks: np.ndarray) -> None:
    from bench.cache import atomic_write_bytes

    small = masks.astype(np.uint8) if masks.size == 0 or (masks.min() >= 0 and masks.max() < 256) else masks.astype(np.int32)
    buffer = io.BytesIO()
    np.savez(buffer, images=images, masks=small)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass  # a read-only cache only costs the decoding time


def list_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Plain files in `folder` with one of the extensions (case-insensitive), hidden files skipped."""
    return sorted(Path(entry.path) for entry in os.scandir(folder)
                  if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(extensions))
