"""Reading and resizing image and mask files (Pillow), shared by the file loaders.

Images are resized with bilinear interpolation (Pillow's, which widens its kernel when shrinking, so
downscaling averages instead of aliasing); masks with nearest neighbour, so every pixel keeps a
label that was really drawn (interpolating class indices would invent classes at borders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.errors import UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_image(path: Path) -> Image.Image:
    """A fully decoded image, so a truncated or corrupt file fails here, with its path."""
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UsageError(f"{path}: cannot read image ({exc})") from exc


def read_image(path: Path, channels: int, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """(image (C, H, W) at `size` = (H, W), original (H, W)).

    8-bit files come back as uint8 (RGBA drops alpha; colour to one channel uses Pillow's luma),
    16-bit files as float32 scaled to [0, 1]; both are resized bilinearly.
    """
    image = open_image(path)
    original = (image.height, image.width)
    if channels not in (1, 3):
        raise UsageError(f"{path}: suites read 1- or 3-channel images, not {channels}")
    if image.mode in _SIXTEEN_BIT or image.mode == "F":
        data = np.asarray(image, dtype=np.float32)
        data = np.clip(data if image.mode == "F" else data / 65535.0, 0.0, 1.0)
        plane = _resize_float(data, size)
        return np.repeat(plane[None], channels, axis=0), original
    try:
        converted = image.convert("RGB" if channels == 3 else "L")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot convert image mode {image.mode} ({exc})") from exc
    resized = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR) if original != tuple(size) else converted
    data = np.asarray(resized, dtype=np.uint8)
    return (data.transpose(2, 0, 1) if data.ndim == 3 else data[None]).copy(), original


def _resize_float(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if plane.shape == tuple(size):
        return plane.astype(np.float32)
    image = Image.fromarray(plane.astype(np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def read_labels(path: Path) -> np.ndarray:
    """The raw values of a one-channel mask file (H, W) int64; palette PNGs give their indices.

    A colour mask whose three channels are equal (a grey mask saved as RGB) is accepted; one with
    real colours is an error, because its class values would be ambiguous.
    """
    image = open_image(path)
    if image.mode == "1":
        image = image.convert("L")
    data = np.asarray(image)
    if data.ndim == 3:
        rgb = data[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise UsageError(f"{path}: mask has colour pixels; expected one channel of class values")
        data = rgb[..., 0]
    return data.astype(np.int64)


def read_binary(path: Path) -> np.ndarray:
    """An object mask (H, W) bool from a 0/255 (or 0/1) file: values of half the range and up are object."""
    labels = read_labels(path)
    return labels > 0 if labels.max(initial=0) <= 1 else labels >= 128


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize with pixel-centre sampling (Pillow's convention), any integer dtype."""
    h, w = labels.shape
    if (h, w) == tuple(size):
        return labels
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def check_same_size(
    mask_path: Path, mask_shape: tuple[int, ...], image_path: Path, image_shape: tuple[int, int]
) -> None:
    if tuple(mask_shape) != tuple(image_shape):
        raise UsageError(
            f"{mask_path}: mask is {mask_shape[1]}x{mask_shape[0]} but its image {image_path} "
            f"is {image_shape[1]}x{image_shape[0]}"
        )


def check_labels(path: Path, labels: np.ndarray, num_classes: int, ignore_label: int | None) -> None:
    """Every value must be a class index or the void label; anything else is named in the error."""
    values = np.unique(labels)
    bad = [int(v) for v in values if not (0 <= v < num_classes or v == ignore_label)]
    if bad:
        void = f", void {ignore_label}" if ignore_label is not None else ""
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise UsageError(f"{path}: mask labels {shown} are outside the class table (0..{num_classes - 1}{void})")


def read_with_mask_union(
    image_path: Path, mask_paths: tuple[Path, ...], channels: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """An image and the union of its binary masks (one per nucleus, or a lesion's extra masks) as 0/1
    labels; every mask must have the image's size, or the error names both files."""
    image, original = read_image(image_path, channels, size)
    union = np.zeros(original, bool)
    for path in mask_paths:
        mask = read_binary(path)
        check_same_size(path, mask.shape, image_path, original)
        union |= mask
    return image, resize_labels(union.astype(np.int64), size)
