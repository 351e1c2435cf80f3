import os
from pathlib import Path

import numpy as np
import pytest

from bench.data import folders
from bench.data.splits import split_indices
from bench.data.suite import get_suite
from bench.errors import UsageError
from tests.bench.data.files_fixture import save, suite_text


def _data(root: Path) -> None:
    for k in range(4):
        save(root / "images" / f"s{k}.png", np.full((8, 8), 30 * k, np.uint8))
        save(root / "masks" / f"s{k}.png", (np.arange(64).reshape(8, 8) % 2).astype(np.uint8))


def _suite(write_suite, root: Path):
    text = suite_text("folders", classes=["a", "b"], channels=1, size=(8, 8), splits=(2, 1, 1))
    return get_suite(str(write_suite(text)), data_dir=root)


def test_cache_is_reused_and_invalidated_by_a_changed_file(tmp_path, write_suite, isolated_cache):
    _data(tmp_path)
    suite = _suite(write_suite, tmp_path)
    first = folders.SOURCE.load(suite.request, "train")
    files = list((isolated_cache / "datasets").glob("*.npz"))
    assert len(files) == 1
    assert np.array_equal(folders.SOURCE.load(suite.request, "train").images, first.images)
    assert list((isolated_cache / "datasets").glob("*.npz")) == files  # a hit, not a second entry
    changed = next(i.image for i in folders.list_items(suite, "train"))
    save(changed, np.full((8, 8), 255, np.uint8))
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse file systems
    assert folders.SOURCE.load(suite.request, "train").images.max() == 1.0
    assert len(list((isolated_cache / "datasets").glob("*.npz"))) == 2


def test_damaged_cache_file_is_rebuilt(tmp_path, write_suite, isolated_cache):
    _data(tmp_path)
    suite = _suite(write_suite, tmp_path)
    first = folders.SOURCE.load(suite.request, "evaluation")
    (cached,) = (isolated_cache / "datasets").glob("*.npz")
    cached.write_bytes(b"not an npz")
    again = folders.SOURCE.load(suite.request, "evaluation")
    assert np.array_equal(first.images, again.images) and np.array_equal(first.masks, again.masks)


def test_partial_split_sizes_keep_their_order():
    sizes = {"train": 3, "calibration": 2}
    train, calibration = (set(split_indices(5, sizes, 4, s)) for s in ("train", "calibration"))
    assert train | calibration == set(range(5)) and not train & calibration
    with pytest.raises(UsageError, match="where: splits need 5 items but the data has 4"):
        split_indices(4, sizes, 4, "train", where="where")
