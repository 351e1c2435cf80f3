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
from typing import TYPE_CHECKING

import numpy as np

from bench.datasets.base import FileDataset, Item, data_root, list_files, pick
from bench.datasets.images import read_with_mask_union
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.suite import Suite


def image_root(suite: "Suite") -> Path:
    root = data_root(suite)
    return root / "stage1_train" if (root / "stage1_train").is_dir() else root


def list_items(suite: "Suite", split: str) -> list[Item]:
    root = image_root(suite)
    ids = [entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")]
    if not ids:
        raise UsageError(f"{root}: no sample folders; expected the dsb2018 layout stage1_train/<id>/images/<id>.png")
    items = []
    for sample in pick(ids, suite.split_sizes, suite.split_seed, split, root):
        image = root / sample / "images" / f"{sample}.png"
        if not image.is_file():
            raise UsageError(f"{image}: missing image of dsb2018 sample '{sample}'")
        mask_dir = root / sample / "masks"
        masks = list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []
        if not masks:
            raise UsageError(f"{image}: image has no mask in {mask_dir}")
        items.append(Item(sample, image, tuple(masks)))
    return items


def read_item(suite: "Suite", item: Item) -> tuple[np.ndarray, np.ndarray]:
    return read_with_mask_union(item.image, item.masks, suite.in_channels, suite.input_size)


def check(suite: "Suite") -> None:
    if suite.options:
        raise UsageError(f"{suite.path}: source 'dsb2018' takes no [options] (got {', '.join(sorted(suite.options))})")
    if suite.num_classes != 2:
        raise UsageError(f"{suite.path}: source 'dsb2018' has 2 classes (background, nucleus), not {suite.num_classes}")


LOADER = FileDataset(list_items, read_item, check, modules=(__name__,))
