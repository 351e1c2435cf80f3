"""2018 Data Science Bowl nuclei (Kaggle `stage1_train` layout), binary: background / nucleus.

Layout: `<data>/stage1_train/<id>/images/<id>.png` (RGBA, mixed sizes) and `<id>/masks/*.png`, one
0/255 mask per nucleus. The semantic mask is the union of the per-nucleus masks. Images become RGB
(alpha dropped) and are resized to the suite's input size, bilinear for the image and nearest
neighbour for the mask, so non-square images are stretched (the benchmark needs one input shape).
The data folder may also be `stage1_train` itself. Splits: seeded, from the sorted image ids.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.data.files import FileDataset, Item, data_root, list_files
from bench.data.images import read_with_mask_union
from bench.data.request import DataRequest
from bench.data.splits import pick
from bench.errors import UsageError


def image_root(request: DataRequest) -> Path:
    root = data_root(request)
    return root / "stage1_train" if (root / "stage1_train").is_dir() else root


def _sample_ids(request: DataRequest) -> tuple[Path, list[str]]:
    root = image_root(request)
    ids = [entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")]
    if not ids:
        raise UsageError(f"{root}: no sample folders; expected the dsb2018 layout stage1_train/<id>/images/<id>.png")
    return root, ids


def count(request: DataRequest, split: str) -> tuple[Path, int]:
    """Every split draws from the one set of samples."""
    root, ids = _sample_ids(request)
    return root, len(ids)


def list_items(request: DataRequest, split: str) -> list[Item]:
    root, ids = _sample_ids(request)
    items = []
    for sample in pick(ids, request.split_sizes, request.split_seed, split, root):
        image = root / sample / "images" / f"{sample}.png"
        if not image.is_file():
            raise UsageError(f"{image}: missing image of dsb2018 sample '{sample}'")
        mask_dir = root / sample / "masks"
        masks = list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []
        if not masks:
            raise UsageError(f"{image}: image has no mask in {mask_dir}")
        items.append(Item(sample, image, tuple(masks)))
    return items


def read_item(request: DataRequest, item: Item) -> tuple[np.ndarray, np.ndarray]:
    return read_with_mask_union(item.image, item.masks, request.in_channels, request.input_size)


def check(request: DataRequest) -> None:
    if request.options:
        raise UsageError(
            f"{request.where}: source 'dsb2018' takes no [options] (got {', '.join(sorted(request.options))})"
        )
    if request.num_classes != 2:
        raise UsageError(
            f"{request.where}: source 'dsb2018' has 2 classes (background, nucleus), not {request.num_classes}"
        )


SOURCE = FileDataset(list_items, read_item, modules=(__name__,), count=count).source(check)
