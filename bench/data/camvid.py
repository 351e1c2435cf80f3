"""CamVid street scenes in the SegNet layout: `train/`, `trainannot/`, `val/`, `valannot/`, `test/`, `testannot/`.

Images are 480x360 RGB; an annotation PNG of the same name holds class indices 0..10 and 11 for
void, which stays 11 in the masks (the suite's ignore label) so metrics and the loss skip it.
Resizing: bilinear for images, nearest neighbour for masks.

Splits: training and calibration come from `train/` (a seeded calibration subset, disjoint from
training); evaluation from the folder named by the option `evaluation_folder`, so evaluation images are
never seen in training. Without that option it is `test/` (the published test split) where the data
folder has one, else `val/` (the shared subset has no test/). The tuning split is held out of `train/`
too, or drawn from `tuning_folder`; when evaluation is on an automatically found `test/` and the file
names no `tuning_folder`, the tuning split comes from `val/`: CamVid's folders are different video
sequences, and frames of a training sequence are close to its training frames, which no held-out frame
of the same folder escapes. The folders chosen are written into the options (the data's identity).
Split counts are taken of the split's folder (a fraction of val/ is a fraction of val/'s images).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.data.files import FileDataset, Item, data_root, list_files, require_dir
from bench.data.images import check_labels, check_same_size, read_image, read_labels, resize_labels
from bench.data.request import DataRequest
from bench.data.splits import pick
from bench.errors import UsageError

OPTIONS = {"evaluation_folder": "val", "train_folder": "train", "tuning_folder": ""}


def folder_of(request: DataRequest, split: str) -> str:
    if split == "tuning" and request.options.get("tuning_folder"):
        return str(request.options["tuning_folder"])
    key = "evaluation_folder" if split == "evaluation" else "train_folder"
    return str(request.options.get(key, OPTIONS[key]))


def _sizes(request: DataRequest, split: str) -> dict[str, int]:
    """The splits drawn from the folder `split` lives in, in the fixed split order."""
    folder = folder_of(request, split)
    return {s: n for s, n in request.split_sizes.items() if folder_of(request, s) == folder}


def _listing(request: DataRequest, split: str) -> tuple[Path, Path, list[str]]:
    """(image folder, annotation folder, image names) of the folder `split` draws from."""
    root = data_root(request)
    folder = folder_of(request, split)
    images = require_dir(root / folder, request, "image folder")
    annot = require_dir(root / f"{folder}annot", request, "annotation folder")
    names = [p.name for p in list_files(images, (".png",))]
    if not names:
        raise UsageError(f"{images}: no .png images (CamVid SegNet layout: {folder}/*.png with {folder}annot/*.png)")
    return images, annot, names


def count(request: DataRequest, split: str) -> tuple[Path, int]:
    """A split's pool is its folder: train/ for training and calibration, the evaluation folder, ..."""
    images, _, names = _listing(request, split)
    return images, len(names)


def fit(request: DataRequest) -> DataRequest:
    """The evaluation folder (and the tuning folder with it) where the suite file leaves it to the data:
    test/ when the data folder has one, else val/; tuning on val/ (held out: no other split uses it)
    when evaluation is on test/. Written into the options, so the cache keys follow the folders."""
    if "evaluation_folder" in request.options or request.data_dir is None:
        return request
    options = dict(request.options)
    train = folder_of(request, "train")
    if "test" not in (train, options.get("tuning_folder")) and (request.data_dir / "test").is_dir():
        options["evaluation_folder"] = "test"
        if "tuning_folder" not in options and train != "val" and (request.data_dir / "val").is_dir():
            options["tuning_folder"] = "val"
            return replace(request, options=options, tuning_from="held-out")
    else:
        options["evaluation_folder"] = OPTIONS["evaluation_folder"]
    return replace(request, options=options)


def list_items(request: DataRequest, split: str) -> list[Item]:
    images, annot, names = _listing(request, split)
    sizes = _sizes(request, split)
    items = []
    for name in pick(names, sizes, request.split_seed, split, images):
        mask = annot / name
        if not mask.is_file():
            raise UsageError(f"{images / name}: image has no mask {mask}")
        items.append(Item(name, images / name, (mask,)))
    return items


def read_item(request: DataRequest, item: Item) -> tuple[np.ndarray, np.ndarray]:
    image, original = read_image(item.image, request.in_channels, request.input_size)
    (mask_path,) = item.masks
    labels = read_labels(mask_path)
    check_same_size(mask_path, labels.shape, item.image, original)
    check_labels(mask_path, labels, request.num_classes, request.ignore_label)
    return image, resize_labels(labels, request.input_size)


def check(request: DataRequest) -> None:
    unknown = sorted(set(request.options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"{request.where}: unknown camvid option '{unknown[0]}'; valid options: {', '.join(OPTIONS)}")
    for key, value in request.options.items():
        if key == "tuning_folder" and value == "":
            continue
        if not isinstance(value, str) or not value or "/" in value or "\\" in value:
            raise UsageError(f"{request.where}: camvid option {key} = {value!r} is not valid; expected a folder name")
    if folder_of(request, "evaluation") == folder_of(request, "train"):
        raise UsageError(
            f"{request.where}: camvid evaluation_folder must differ from train_folder "
            "(calibration and training are drawn from the training folder)"
        )
    tuning = request.options.get("tuning_folder")
    if tuning and tuning in (folder_of(request, "evaluation"), folder_of(request, "train")):
        raise UsageError(
            f"{request.where}: camvid tuning_folder = {tuning!r} must differ from evaluation_folder and train_folder "
            "(leave it out to hold the tuning split out of the training folder)"
        )


SOURCE = FileDataset(list_items, read_item, modules=(__name__,), count=count).source(check, fit)
