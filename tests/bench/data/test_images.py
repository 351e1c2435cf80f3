"""Image and mask files as the file loaders read them, on tiny files written here: 8- and 16-bit images,
masks of class values (grey saved as RGB too), 0/255 object masks, nearest-neighbour label resizing, and
the errors that name the file at fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.images import (
    check_labels,
    check_same_size,
    open_image,
    read_binary,
    read_image,
    read_labels,
    read_with_mask_union,
    resize_labels,
)
from bench.errors import UsageError


def _png(path: Path, data: np.ndarray) -> Path:
    Image.fromarray(data).save(path)
    return path


def test_labels_are_resized_by_pixel_centres_and_never_blended():
    labels = np.array([[0, 1], [2, 3]], np.int64)
    assert resize_labels(labels, (4, 4)).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    grid = np.arange(16).reshape(4, 4)
    assert resize_labels(grid, (2, 2)).tolist() == [[5, 7], [13, 15]]  # centres 0.5 and 1.5 map to rows 1 and 3
    assert resize_labels(grid, (4, 4)) is grid


def test_an_8_bit_image_comes_back_uint8_channels_first_with_its_original_size(tmp_path: Path):
    grey = _png(tmp_path / "grey.png", np.array([[0, 50, 100], [150, 200, 250]], np.uint8))
    image, original = read_image(grey, 1, (2, 3))
    assert original == (2, 3) and image.dtype == np.uint8
    assert image.tolist() == [[[0, 50, 100], [150, 200, 250]]]
    rgb, _ = read_image(grey, 3, (2, 3))
    assert rgb.shape == (3, 2, 3) and (rgb == image).all()  # grey to RGB: three equal planes
    resized, original = read_image(grey, 1, (4, 6))
    assert resized.shape == (1, 4, 6) and original == (2, 3)


def test_a_16_bit_image_is_scaled_to_0_1_as_float(tmp_path: Path):
    path = _png(tmp_path / "deep.png", np.array([[0, 65535], [13107, 32768]], np.uint16))
    image, original = read_image(path, 3, (2, 2))
    assert original == (2, 2) and image.dtype == np.float32 and image.shape == (3, 2, 2)
    np.testing.assert_allclose(image[0], [[0.0, 1.0], [0.2, 32768 / 65535]], rtol=1e-6)


def test_unreadable_files_and_channel_counts_are_usage_errors_naming_the_file(tmp_path: Path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(_png(tmp_path / "whole.png", np.zeros((8, 8), np.uint8)).read_bytes()[:40])
    with pytest.raises(UsageError, match=r"broken\.png: cannot read image"):
        open_image(broken)
    with pytest.raises(UsageError, match=r"whole\.png: suites read 1- or 3-channel images, not 4"):
        read_image(tmp_path / "whole.png", 4, (8, 8))


def test_masks_hold_class_values_and_grey_saved_as_rgb_is_accepted(tmp_path: Path):
    values = np.array([[0, 1], [2, 255]], np.uint8)
    assert read_labels(_png(tmp_path / "l.png", values)).tolist() == [[0, 1], [2, 255]]
    assert read_labels(_png(tmp_path / "rgb.png", np.stack([values] * 3, axis=-1))).dtype == np.int64
    colour = np.stack([values, values, values[::-1]], axis=-1)
    with pytest.raises(UsageError, match=r"colour\.png: mask has colour pixels"):
        read_labels(_png(tmp_path / "colour.png", colour))


def test_object_masks_are_0_1_or_0_255_with_half_the_range_the_cut(tmp_path: Path):
    assert read_binary(_png(tmp_path / "a.png", np.array([[0, 255], [127, 128]], np.uint8))).tolist() == [
        [False, True],
        [False, True],
    ]
    assert read_binary(_png(tmp_path / "b.png", np.array([[0, 1], [1, 0]], np.uint8))).tolist() == [
        [False, True],
        [True, False],
    ]


def test_label_checks_name_the_values_outside_the_class_table(tmp_path: Path):
    check_labels(tmp_path / "ok.png", np.array([[0, 2], [255, 1]]), 3, 255)
    with pytest.raises(UsageError, match=r"m\.png: mask labels 3, 7 are outside the class table \(0\.\.2, void 255\)"):
        check_labels(tmp_path / "m.png", np.array([[0, 3], [255, 7]]), 3, 255)
    many = np.arange(20).reshape(4, 5)
    with pytest.raises(
        UsageError, match=r"labels 2, 3, 4, 5, 6, 7, 8, 9, \.\.\. are outside the class table \(0\.\.1\)$"
    ):
        check_labels(tmp_path / "m.png", many, 2, None)
    with pytest.raises(UsageError, match=r"m\.png: mask is 3x2 but its image i\.png is 4x2"):
        check_same_size(tmp_path / "m.png", (2, 3), Path("i.png"), (2, 4))


def test_masks_of_one_image_are_united_and_must_have_its_size(tmp_path: Path):
    image = _png(tmp_path / "image.png", np.full((2, 4), 9, np.uint8))
    left = _png(tmp_path / "left.png", np.array([[255, 0, 0, 0], [255, 0, 0, 0]], np.uint8))
    right = _png(tmp_path / "right.png", np.array([[0, 0, 0, 255], [0, 0, 0, 0]], np.uint8))
    pixels, labels = read_with_mask_union(image, (left, right), 1, (2, 4))
    assert pixels.tolist() == [[[9] * 4] * 2] and labels.tolist() == [[1, 0, 0, 1], [1, 0, 0, 0]]
    small = _png(tmp_path / "small.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(UsageError, match=r"small\.png: mask is 2x2 but its image .*image\.png is 4x2"):
        read_with_mask_union(image, (left, small), 1, (2, 4))
