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

import numpy as np

from bench.data.files import FileDataset, Item, data_root, list_files, require_dir
from bench.data.images import IMAGE_EXTENSIONS, check_same_size, read_image, read_labels, resize_labels
from bench.data.request import DataRequest
from bench.data.splits import pick
from bench.errors import UsageError

OPTIONS = ("images", "masks", "mask_values", "ignore_value")


def mask_values(request: DataRequest) -> list[int]:
    return [int(v) for v in request.options.get("mask_values", range(request.num_classes))]


def _by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in list_files(folder, IMAGE_EXTENSIONS):
        if path.stem in found:
            raise UsageError(
                f"{path}: two files with the stem '{path.stem}' ({found[path.stem].name}); "
                "each image and mask needs a unique stem"
            )
        found[path.stem] = path
    return found


def _listing(request: DataRequest) -> tuple[Path, dict[str, Path], Path, dict[str, Path]]:
    """(data folder, images by stem, mask folder, masks by stem)."""
    root = data_root(request)
    images = _by_stem(require_dir(root / request.options.get("images", "images"), request, "image folder"))
    mask_dir = require_dir(root / request.options.get("masks", "masks"), request, "mask folder")
    masks = _by_stem(mask_dir)
    if not images:
        raise UsageError(f"{root / request.options.get('images', 'images')}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return root, images, mask_dir, masks


def count(request: DataRequest, split: str) -> tuple[Path, int]:
    """Every split draws from the one image folder."""
    root, images, _, _ = _listing(request)
    return root, len(images)


def list_items(request: DataRequest, split: str) -> list[Item]:
    root, images, mask_dir, masks = _listing(request)
    items = []
    for stem in pick(list(images), request.split_sizes, request.split_seed, split, root):
        if stem not in masks:
            raise UsageError(f"{images[stem]}: image has no mask {mask_dir / stem}.* in {mask_dir}")
        items.append(Item(stem, images[stem], (masks[stem],)))
    return items


def read_item(request: DataRequest, item: Item) -> tuple[np.ndarray, np.ndarray]:
    image, original = read_image(item.image, request.in_channels, request.input_size)
    (mask_path,) = item.masks
    raw = read_labels(mask_path)
    check_same_size(mask_path, raw.shape, item.image, original)
    table = dict(zip(mask_values(request), range(request.num_classes)))
    if "ignore_value" in request.options:
        assert request.ignore_label is not None  # check() made sure it is set
        table[int(request.options["ignore_value"])] = request.ignore_label
    values, inverse = np.unique(raw, return_inverse=True)
    bad = [int(v) for v in values if int(v) not in table]
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise UsageError(
            f"{mask_path}: mask values {shown} are not in the class table "
            f"(mask_values {sorted(table)} of suite '{request.suite}')"
        )
    labels = np.array([table[int(v)] for v in values], np.int64)[inverse.reshape(raw.shape)]
    return image, resize_labels(labels, request.input_size)


def check(request: DataRequest) -> None:
    where = request.where
    unknown = sorted(set(request.options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"{where}: unknown folders option '{unknown[0]}'; valid options: {', '.join(OPTIONS)}")
    for key in ("images", "masks"):
        value = request.options.get(key, key)
        if not isinstance(value, str) or not value:
            raise UsageError(f"{where}: folders option {key} = {value!r} is not valid; expected a folder name")
    values = request.options.get("mask_values", list(range(request.num_classes)))
    if (
        not isinstance(values, list)
        or len(values) != request.num_classes
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
        or len(set(values)) != len(values)
    ):
        raise UsageError(
            f"{where}: mask_values = {values!r} is not valid; expected {request.num_classes} distinct "
            f"non-negative integers, one per class ({', '.join(request.classes)})"
        )
    if "ignore_value" in request.options:
        ignore = request.options["ignore_value"]
        if not isinstance(ignore, int) or isinstance(ignore, bool) or ignore < 0 or ignore in values:
            raise UsageError(
                f"{where}: ignore_value = {ignore!r} is not valid; expected a non-negative integer "
                "that is not one of mask_values"
            )
        if request.ignore_label is None:
            raise UsageError(
                f"{where}: ignore_value needs ignore_label (the label void pixels get, e.g. "
                f"ignore_label = {request.num_classes})"
            )


SOURCE = FileDataset(list_items, read_item, modules=(__name__,), count=count).source(check)
