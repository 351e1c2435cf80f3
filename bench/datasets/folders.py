"""A generic layout for a user's own data: `images/` and `masks/` with matching file stems.

Any of PNG, JPEG, TIFF or BMP on either side (masks should be lossless: a JPEG mask has values
between the classes, which is reported as an error). The suite file's class table maps mask pixel
values to classes: `[options] mask_values` gives the value of each class in order (default
0..n-1; e.g. [0, 255] for a binary 0/255 mask) and `ignore_value` the value of void pixels, which
become the suite's `ignore_label`. Any other value is an error naming the file. The folder names
can be changed with the options `images` and `masks`. Splits: seeded, from the sorted stems.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.datasets.base import FileDataset, Item, data_root, list_files, pick, require_dir
from bench.datasets.images import IMAGE_EXTENSIONS, check_same_size, read_image, read_labels, resize_labels
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.suite import Suite

OPTIONS = ("images", "masks", "mask_values", "ignore_value")


def mask_values(suite: "Suite") -> list[int]:
    return [int(v) for v in suite.options.get("mask_values", range(suite.num_classes))]


def _by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in list_files(folder, IMAGE_EXTENSIONS):
        if path.stem in found:
            raise UsageError(f"{path}: two files with the stem '{path.stem}' ({found[path.stem].name}); "
                             "each image and mask needs a unique stem")
        found[path.stem] = path
    return found


def list_items(suite: "Suite", split: str) -> list[Item]:
    root = data_root(suite)
    images = _by_stem(require_dir(root / suite.options.get("images", "images"), suite, "image folder"))
    mask_dir = require_dir(root / suite.options.get("masks", "masks"), suite, "mask folder")
    masks = _by_stem(mask_dir)
    if not images:
        raise UsageError(f"{root / suite.options.get('images', 'images')}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    items = []
    for stem in pick(list(images), suite.split_sizes, suite.split_seed, split, root):
        if stem not in masks:
            raise UsageError(f"{images[stem]}: image has no mask {mask_dir / stem}.* in {mask_dir}")
        items.append(Item(stem, images[stem], (masks[stem],)))
    return items


def read_item(suite: "Suite", item: Item) -> tuple[np.ndarray, np.ndarray]:
    image, original = read_image(item.image, suite.in_channels, suite.input_size)
    (mask_path,) = item.masks
    raw = read_labels(mask_path)
    check_same_size(mask_path, raw.shape, item.image, original)
    table = dict(zip(mask_values(suite), range(suite.num_classes)))
    if "ignore_value" in suite.options:
        table[int(suite.options["ignore_value"])] = int(suite.ignore_label)  # check() made sure it is set
    values, inverse = np.unique(raw, return_inverse=True)
    bad = [int(v) for v in values if int(v) not in table]
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise UsageError(f"{mask_path}: mask values {shown} are not in the class table "
                         f"(mask_values {sorted(table)} of suite '{suite.name}')")
    labels = np.array([table[int(v)] for v in values], np.int64)[inverse.reshape(raw.shape)]
    return image, resize_labels(labels, suite.input_size)


def check(suite: "Suite") -> None:
    where = suite.path
    unknown = sorted(set(suite.options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"{where}: unknown folders option '{unknown[0]}'; valid options: {', '.join(OPTIONS)}")
    for key in ("images", "masks"):
        value = suite.options.get(key, key)
        if not isinstance(value, str) or not value:
            raise UsageError(f"{where}: folders option {key} = {value!r} is not valid; expected a folder name")
    values = suite.options.get("mask_values", list(range(suite.num_classes)))
    if (not isinstance(values, list) or len(values) != suite.num_classes
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
            or len(set(values)) != len(values)):
        raise UsageError(f"{where}: mask_values = {values!r} is not valid; expected {suite.num_classes} distinct "
                         f"non-negative integers, one per class ({', '.join(suite.classes)})")
    if "ignore_value" in suite.options:
        ignore = suite.options["ignore_value"]
        if not isinstance(ignore, int) or isinstance(ignore, bool) or ignore < 0 or ignore in values:
            raise UsageError(f"{where}: ignore_value = {ignore!r} is not valid; expected a non-negative integer "
                             "that is not one of mask_values")
        if suite.ignore_label is None:
            raise UsageError(f"{where}: ignore_value needs ignore_label (the label void pixels get, e.g. "
                             f"ignore_label = {suite.num_classes})")


LOADER = FileDataset(list_items, read_item, check, modules=(__name__,))
