from pathlib import Path

import numpy as np
import pytest

from bench.data.request import SPLITS as ALL_SPLITS
from bench.data.suite import get_suite
from bench.errors import UsageError
from tests.bench.data.files_fixture import save, suite_text

SPLITS = ALL_SPLITS[:3]  # train, calibration, evaluation (the tuning split: test_tuning_split.py)

BINARY = "mask_values = [0, 255]\nignore_value = 128"


def _fixture(root: Path, count: int = 6, mask_value: int = 255) -> None:
    rng = np.random.default_rng(2)
    for k in range(count):
        image = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
        if k % 2:
            save(root / "images" / f"s{k}.png", image)
        else:
            save(root / "images" / f"s{k}.jpg", image)
        mask = np.zeros((10, 10), np.uint8)
        mask[2:6, 2:6] = mask_value
        mask[0, :] = 128  # void
        save(root / "masks" / f"s{k}.png", mask)


def _suite(write_suite, root: Path, options: str = BINARY, extra: str = "ignore_label = 255", splits=(3, 1, 2)):
    text = suite_text(
        "folders", classes=["background", "object"], size=(10, 10), splits=splits, extra=extra, options=options
    )
    return get_suite(str(write_suite(text)), data_dir=root)


def test_mask_values_and_void_map_to_classes_and_ignore_label(tmp_path, write_suite):
    _fixture(tmp_path)
    suite = _suite(write_suite, tmp_path)
    data = {s: suite.load(s) for s in SPLITS}
    assert [len(d) for d in data.values()] == [3, 1, 2]
    for d in data.values():
        assert d.images.shape[1:] == (3, 10, 10)
        expected = np.zeros((10, 10), np.int64)
        expected[2:6, 2:6] = 1
        expected[0, :] = 255
        assert all(np.array_equal(m, expected) for m in d.masks)


def test_default_mask_values_are_class_indices(tmp_path, write_suite):
    _fixture(tmp_path, mask_value=1)
    suite = _suite(write_suite, tmp_path, options="ignore_value = 128")
    assert set(np.unique(suite.load("train").masks)) == {0, 1, 255}


def test_values_outside_the_table_name_the_mask(tmp_path, write_suite):
    _fixture(tmp_path, mask_value=200)
    with pytest.raises(UsageError, match=r"masks/s\d\.png: mask values 200 are not in the class table"):
        _suite(write_suite, tmp_path).load("train")


def test_image_without_mask_names_the_image(tmp_path, write_suite):
    _fixture(tmp_path)
    for k in range(6):
        (tmp_path / "masks" / f"s{k}.png").unlink()
    with pytest.raises(UsageError, match=r"images/s\d\.(png|jpg): image has no mask"):
        _suite(write_suite, tmp_path).load("train")


@pytest.mark.parametrize(
    "options, extra, message",
    [
        ("mask_values = [0, 255, 7]", "", r"mask_values = \[0, 255, 7\] is not valid; expected 2 distinct"),
        ("mask_values = [0, 0]", "", "mask_values = \\[0, 0\\] is not valid"),
        ("ignore_value = 128", "", "ignore_value needs ignore_label"),
        ("mask_values = [0, 255]\nignore_value = 255", "ignore_label = 9", "ignore_value = 255 is not valid"),
        ("folder = 'x'", "", "unknown folders option 'folder'"),
    ],
)
def test_bad_class_table_options_name_the_suite_file(tmp_path, write_suite, options, extra, message):
    with pytest.raises(UsageError, match=r"suite\.toml: " + message):
        _suite(write_suite, tmp_path, options=options, extra=extra)
