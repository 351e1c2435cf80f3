"""Breast ultrasound images (BUSI, Al-Dhabyani et al. 2020): background / tumor, grayscale.

Layout: `Dataset_BUSI_with_GT/{benign,malignant,normal}/<name>.png` with `<name>_mask.png`, and for
some images extra `<name>_mask_1.png`, `<name>_mask_2.png` (several lesions), which are unioned.
The data folder may be `Dataset_BUSI_with_GT` itself or the folder that contains it. The normal
class (images without a lesion) is excluded, as in the published MATLAB example; the option
`categories` names the folders to use (default ["benign", "malignant"]). Images are read as one
channel (the PNGs are grey saved as RGB), resized bilinearly; masks nearest neighbour.
Splits: seeded, from the sorted "<category>/<name>" keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.data.files import FileDataset, Item, data_root, list_files, require_dir
from bench.data.images import read_with_mask_union
from bench.data.request import DataRequest
from bench.data.splits import pick
from bench.errors import UsageError

FOLDER = "Dataset_BUSI_with_GT"
DEFAULT_CATEGORIES = ("benign", "malignant")
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?\.png$", re.IGNORECASE)


def dataset_root(request: DataRequest) -> Path:
    root = data_root(request)
    return root / FOLDER if (root / FOLDER).is_dir() else root


def categories(request: DataRequest) -> tuple[str, ...]:
    return tuple(request.options.get("categories", DEFAULT_CATEGORIES))


def _category_items(request: DataRequest, folder: Path, category: str) -> dict[str, Item]:
    files = list_files(require_dir(folder, request, f"'{category}' folder"), (".png",))
    masks: dict[str, list[Path]] = {}
    images = []
    for path in files:
        match = _MASK.match(path.name)
        if match:
            masks.setdefault(match["stem"], []).append(path)
        else:
            images.append(path)
    items = {}
    for image in images:
        found = masks.get(image.stem)
        if not found:
            raise UsageError(f"{image}: image has no mask {folder / (image.stem + '_mask.png')}")
        items[f"{category}/{image.stem}"] = Item(f"{category}/{image.stem}", image, tuple(sorted(found)))
    return items


def _everything(request: DataRequest) -> tuple[Path, dict[str, Item]]:
    root = dataset_root(request)
    everything: dict[str, Item] = {}
    for category in categories(request):
        everything |= _category_items(request, root / category, category)
    if not everything:
        raise UsageError(
            f"{root}: no images in {', '.join(categories(request))}; expected {FOLDER}/<category>/<name>.png"
        )
    return root, everything


def count(request: DataRequest, split: str) -> tuple[Path, int]:
    """Every split draws from the images of all the categories together."""
    root, everything = _everything(request)
    return root, len(everything)


def list_items(request: DataRequest, split: str) -> list[Item]:
    root, everything = _everything(request)
    return [everything[key] for key in pick(list(everything), request.split_sizes, request.split_seed, split, root)]


def read_item(request: DataRequest, item: Item) -> tuple[np.ndarray, np.ndarray]:
    return read_with_mask_union(item.image, item.masks, request.in_channels, request.input_size)


def check(request: DataRequest) -> None:
    unknown = sorted(set(request.options) - {"categories"})
    if unknown:
        raise UsageError(f"{request.where}: unknown busi option '{unknown[0]}'; valid options: categories")
    cats = request.options.get("categories", DEFAULT_CATEGORIES)
    if (
        not isinstance(cats, (list, tuple))
        or not cats
        or not all(isinstance(c, str) and c and "/" not in c for c in cats)
    ):
        raise UsageError(f"{request.where}: busi option categories = {cats!r} is not valid; expected folder names")
    if request.num_classes != 2:
        raise UsageError(f"{request.where}: source 'busi' has 2 classes (background, tumor), not {request.num_classes}")


SOURCE = FileDataset(list_items, read_item, modules=(__name__,), count=count).source(check)
