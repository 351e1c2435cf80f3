from pathlib import Path

import numpy as np
import pytest

from bench.data import busi
from bench.data.request import SPLITS as ALL_SPLITS
from bench.data.suite import get_suite
from bench.errors import UsageError
from tests.bench.data.files_fixture import save, suite_text

SPLITS = ALL_SPLITS[:3]  # train, calibration, evaluation (the tuning split: test_tuning_split.py)


def _fixture(root: Path) -> Path:
    """Two benign, two malignant (one with a second lesion in `_mask_1`), two normal images, 12x16 RGB grey."""
    top = root / busi.FOLDER
    for category in ("benign", "malignant", "normal"):
        for k in (1, 2):
            name = f"{category} ({k})"
            grey = np.full((12, 16), 40 * k, np.uint8)
            save(top / category / f"{name}.png", np.stack([grey] * 3, -1))
            mask = np.zeros((12, 16), np.uint8)
            if category != "normal":
                mask[1:4, 1:5] = 255
            save(top / category / f"{name}_mask.png", mask)
    extra = np.zeros((12, 16), np.uint8)
    extra[8:11, 10:15] = 255
    save(top / "malignant" / "malignant (2)_mask_1.png", extra)
    return top


def _suite(write_suite, data_dir: Path, splits=(2, 1, 1)):
    text = suite_text("busi", classes=["background", "tumor"], channels=1, size=(12, 16), splits=splits)
    return get_suite(str(write_suite(text)), data_dir=data_dir)


def test_normal_is_excluded_and_extra_masks_are_unioned(tmp_path, write_suite):
    _fixture(tmp_path)
    suite = _suite(write_suite, tmp_path)
    items = {s: busi.list_items(suite, s) for s in SPLITS}
    names = sorted(i.name for s in SPLITS for i in items[s])
    assert names == ["benign/benign (1)", "benign/benign (2)", "malignant/malignant (1)", "malignant/malignant (2)"]
    everything = {i.name: i for s in SPLITS for i in items[s]}
    assert [m.name for m in everything["malignant/malignant (2)"].masks] == [
        "malignant (2)_mask.png",
        "malignant (2)_mask_1.png",
    ]
    image, mask = busi.read_item(suite, everything["malignant/malignant (2)"])
    expected = np.zeros((12, 16), np.int64)
    expected[1:4, 1:5] = expected[8:11, 10:15] = 1
    assert np.array_equal(mask, expected)
    assert image.shape == (1, 12, 16) and image.dtype == np.uint8 and int(image.max()) == 80
    data = suite.load("train")
    assert data.images.shape == (2, 1, 12, 16) and set(np.unique(data.masks)) <= {0, 1}


def test_data_dir_may_be_the_dataset_folder_itself(tmp_path, write_suite):
    top = _fixture(tmp_path)
    outer, inner = _suite(write_suite, tmp_path), _suite(write_suite, top)
    for split in SPLITS:
        assert [i.image for i in busi.list_items(outer, split)] == [i.image for i in busi.list_items(inner, split)]


def test_image_without_mask_and_too_few_items(tmp_path, write_suite):
    top = _fixture(tmp_path)
    (top / "benign" / "benign (2)_mask.png").unlink()
    with pytest.raises(UsageError, match=r"benign \(2\)\.png: image has no mask .*benign \(2\)_mask\.png"):
        _suite(write_suite, tmp_path).load("train")
    save(top / "benign" / "benign (2)_mask.png", np.zeros((12, 16), np.uint8))
    with pytest.raises(UsageError, match=f"{top}: splits need 5 items but the data has 4"):
        _suite(write_suite, tmp_path, splits=(3, 1, 1)).load("train")


def test_mask_of_another_size_names_both_files(tmp_path, write_suite):
    top = _fixture(tmp_path)
    for category in ("benign", "malignant"):
        for k in (1, 2):
            save(top / category / f"{category} ({k})_mask.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(UsageError, match=r"_mask\.png: mask is 5x5 but its image .*\.png is 16x12"):
        _suite(write_suite, tmp_path).load("train")
