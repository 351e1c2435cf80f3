"""CamVid street scenes in the SegNet layout: `train/`, `trainannot/`, `val/`, `valannot/`, `test/`, `testannot/`.

Images are 480x360 RGB; an annotation PNG of the same name holds class indices 0..10 and 11 for
void, which stays 11 in the masks (the suite's ignore label) so metrics and the loss skip it.
Resizing: bilinear for images, nearest neighbour for masks.

Splits: training and calibration come from `train/` (a seeded calibration subset, disjoint from
training); evaluation from the folder named by the option `evaluation_folder` ("val" by default,
"test" for the published test split), so evaluation images are never seen in training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bench.datasets.base import FileDataset, Item, data_root, list_files, pick, require_dir
from bench.datasets.images import check_labels, check_same_size, read_image, read_labels, resize_labels
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.suite import Suite

OPTIONS = {"evaluation_folder": "val", "train_folder": "train"}


def folder_of(suite: "Suite", split: str) -> str:
    key = "evaluation_folder" if split == "evaluation" else "train_folder"
    return str(suite.options.get(key, OPTIONS[key]))


def list_items(suite: "Suite", split: str) -> list[Item]:
    root = data_root(suite)
    folder = folder_of(suite, split)
    images = require_dir(root / folder, suite, "image folder")
    annot = require_dir(root / f"{folder}annot", suite, "annotation folder")
    sizes = {"evaluation": suite.split_sizes["evaluation"]} if split == "evaluation" else \
        {s: suite.split_sizes[s] for s in ("train", "calibration")}
    names = [p.name for p in list_files(images, (".png",))]
    if not names:
        raise UsageError(f"{images}: no .png images (CamVid SegNet layout: {folder}/*.png with {folder}annot/*.png)")
    items = []
    for name in pick(names, sizes, suite.split_seed, split, images):
        mask = annot / name
        if not mask.is_file():
            raise UsageError(f"{images / name}: image has no mask {mask}")
        items.append(Item(name, images / name, (mask,)))
    return items


def read_item(suite: "Suite", item: Item) -> tuple[np.ndarray, np.ndarray]:
    image, original = read_image(item.image, suite.in_channels, suite.input_size)
    (mask_path,) = item.masks
    labels = read_labels(mask_path)
    check_same_size(mask_path, labels.shape, item.image, original)
    check_labels(mask_path, labels, suite.num_classes, suite.ignore_label)
    return image, resize_labels(labels, suite.input_size)


def check(suite: "Suite") -> None:
    unknown = sorted(set(suite.options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"{suite.path}: unknown camvid option '{unknown[0]}'; valid options: {', '.join(OPTIONS)}")
    for key, value in suite.options.items():
        if not isinstance(value, str) or not value or "/" in value or "\\" in value:
            raise UsageError(f"{suite.path}: camvid option {key} = {value!r} is not valid; expected a folder name")
    if folder_of(suite, "evaluation") == folder_of(suite, "train"):
        raise UsageError(f"{suite.path}: camvid evaluation_folder must differ from train_folder "
                         "(calibration and training are drawn from the training folder)")


LOADER = FileDataset(list_items, read_item, check, modules=(__name__,))
