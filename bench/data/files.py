"""Data on disk: a layout names the files of a split and decodes one pair; this module does the rest.

Stacking, checking and an on-disk cache are the same for every layout, so a benchmark cell that
starts in a fresh process does not decode thousands of PNGs again. Decoded splits are cached under
`cache_root()/datasets/`; the key covers the request, the split, the loader code and the (name,
size, mtime) of every file read, so an edited file or loader is never served stale.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.request import DataRequest, Source, SplitData, _as_is, _no_check
from bench.errors import UsageError


@dataclass(frozen=True)
class Item:
    """One image and the mask file(s) whose union (or label map) is its ground truth."""

    name: str
    image: Path
    masks: tuple[Path, ...]

    def files(self) -> tuple[Path, ...]:
        return (self.image, *self.masks)


def require_dir(path: Path, request: DataRequest, what: str = "data folder") -> Path:
    if not path.is_dir():
        hint = " (check --data-dir or SEGBENCH_DATA)" if path == request.data_dir else ""
        raise UsageError(f"{path}: {what} of suite '{request.suite}' does not exist{hint}")
    return path


def data_root(request: DataRequest) -> Path:
    """The suite's resolved data folder, which must exist."""
    if request.data_dir is None:
        raise UsageError(f"suite '{request.suite}' reads files but has no data folder; pass --data-dir")
    return require_dir(request.data_dir, request)


@dataclass(frozen=True)
class FileDataset:
    """A layout's two functions, made into a cached loader.

    list_items(request, split) -> the split's items, in a fixed order (raise UsageError for missing
        folders, images without masks, and too few items);
    read_item(request, item) -> (image (C, H, W) uint8 or float32 in [0, 1], mask (H, W) int64),
        already at the input size and with class indices (void = ignore_label);
    modules: the loader's source modules, whose content is part of the cache key;
    count(request, split) -> (the folder the split draws from, how many items it holds): what a
        fraction or "all" in the suite file is taken of (`Source.count`).
    """

    list_items: Callable[[DataRequest, str], list[Item]]
    read_item: Callable[[DataRequest, Item], tuple[np.ndarray, np.ndarray]]
    modules: tuple[str, ...] = ()
    count: Callable[[DataRequest, str], tuple[Path, int]] | None = None

    def source(
        self, check: Callable[[DataRequest], None] = _no_check, fit: Callable[[DataRequest], DataRequest] = _as_is
    ) -> Source:
        """The registry entry: load through the cache, probe by listing the evaluation split."""
        return Source(
            load=self.load,
            check=check,
            probe=lambda request: self.list_items(request, "evaluation"),
            count=self.count,
            fit=fit,
        )

    def load(self, request: DataRequest, split: str) -> SplitData:
        items = self.list_items(request, split)
        path = self.cache_path(request, split, items)
        if path.is_file():
            try:
                with np.load(path) as cached:
                    return SplitData(images=to_unit(cached["images"]), masks=cached["masks"].astype(np.int64))
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is rebuilt below
        pairs = [self.read_item(request, item) for item in items]
        raw_images = _stack_images([image for image, _ in pairs], request.in_channels, request.input_size)
        masks = (np.stack([mask for _, mask in pairs]) if pairs else np.zeros((0, *request.input_size))).astype(
            np.int64
        )
        _write_cache(path, raw_images, masks)
        return SplitData(images=to_unit(raw_images), masks=masks)

    def cache_path(self, request: DataRequest, split: str, items: list[Item]) -> Path:
        from bench.cache import cache_root, code_digest, library_versions, stable_hash

        files = []
        for item in items:
            for f in item.files():
                try:
                    st = f.stat()
                except OSError as exc:
                    raise UsageError(f"{f}: cannot read file ({exc.strerror})") from exc
                files.append((str(f), st.st_size, st.st_mtime_ns))
        code = code_digest(__name__, *self.modules)
        libraries = library_versions(("pillow", "numpy"))
        key = stable_hash(
            {"data": request.config(), "split": split, "files": sorted(files), "code": code, "libraries": libraries}
        )
        return cache_root() / "datasets" / f"{request.suite}--{split}--{key}.npz"


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

    small = (
        masks.astype(np.uint8)
        if masks.size == 0 or (masks.min() >= 0 and masks.max() < 256)
        else masks.astype(np.int32)
    )
    buffer = io.BytesIO()
    np.savez(buffer, images=images, masks=small)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass  # a read-only cache only costs the decoding time


def list_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Plain files in `folder` with one of the extensions (case-insensitive), hidden files skipped."""
    return sorted(
        Path(entry.path)
        for entry in os.scandir(folder)
        if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(extensions)
    )
