"""Procedural fluorescence-microscopy nuclei, so the default suite needs no download.

Each image is drawn from its own generator seeded by (suite seed, image index), so any image can be
regenerated alone and two generations with the same seed are bit-identical. The ground truth is the
exact union of the ellipses, computed before blur and noise are applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bench.data.procedural import procedural_source


@dataclass(frozen=True)
class NucleiParams:
    """Ranges of the generator; defaults give 128x128 images with 6-18 nuclei."""

    height: int = 128
    width: int = 128
    nuclei_min: int = 6
    nuclei_max: int = 18
    radius_min: float = 4.0
    radius_max: float = 11.0
    touching_fraction: float = 0.3
    brightness_min: float = 0.35
    brightness_max: float = 1.0
    blur_sigma_min: float = 0.6
    blur_sigma_max: float = 1.6
    photons_min: float = 20.0
    photons_max: float = 200.0


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (np.abs(field).max() + 1e-8)


def _centres(rng: np.random.Generator, p: NucleiParams, count: int) -> list[tuple[float, float, float, float]]:
    """(cy, cx, ry, rx) per nucleus; a fraction is placed against an earlier one so they touch."""
    out: list[tuple[float, float, float, float]] = []
    for _ in range(count):
        ry, rx = rng.uniform(p.radius_min, p.radius_max, size=2)
        if out and rng.random() < p.touching_fraction:
            oy, ox, ory, orx = out[rng.integers(len(out))]
            theta = rng.uniform(0, 2 * np.pi)
            dist = 0.9 * ((ory + orx) / 2 + (ry + rx) / 2)
            cy, cx = oy + dist * np.sin(theta), ox + dist * np.cos(theta)
        else:
            cy, cx = rng.uniform(0, p.height), rng.uniform(0, p.width)
        out.append((float(cy), float(cx), float(ry), float(rx)))
    return out


def generate_nuclei_image(seed: int, index: int, p: NucleiParams = NucleiParams()) -> tuple[np.ndarray, np.ndarray]:
    """One (image, mask) pair: image float32 (H, W) in [0, 1], mask uint8 (H, W) with 0/1."""
    rng = np.random.default_rng([seed, index])
    shape = (p.height, p.width)
    signal = np.zeros(shape, np.float32)
    mask = np.zeros(shape, bool)
    texture = 1.0 + 0.25 * _smooth_field(rng, shape, sigma=1.5)  # chromatin-like granularity
    for cy, cx, ry, rx in _centres(rng, p, int(rng.integers(p.nuclei_min, p.nuclei_max + 1))):
        inside = _ellipse(shape, cy, cx, ry, rx, rng.uniform(0, np.pi))
        brightness = rng.uniform(p.brightness_min, p.brightness_max)
        signal = np.where(inside, np.maximum(signal, brightness * texture), signal)
        mask |= inside
    yy, xx = np.mgrid[0 : p.height, 0 : p.width] / max(shape)
    gy, gx = rng.uniform(-1, 1, size=2)
    background = 0.06 + 0.05 * (gy * yy + gx * xx) + 0.04 * _smooth_field(rng, shape, sigma=16)
    optical = ndimage.gaussian_filter(signal, rng.uniform(p.blur_sigma_min, p.blur_sigma_max))
    intensity = np.clip(background + optical, 0, None)
    photons = rng.uniform(p.photons_min, p.photons_max)
    noisy = rng.poisson(intensity * photons) / photons  # shot noise
    return np.clip(noisy, 0, 1).astype(np.float32), mask.astype(np.uint8)


def generate_nuclei(seed: int, indices: np.ndarray, p: NucleiParams = NucleiParams()) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) float32 and masks (N, H, W) uint8 for the given image indices."""
    pairs = [generate_nuclei_image(seed, int(i), p) for i in indices]
    images = np.stack([img for img, _ in pairs])[:, None]
    masks = np.stack([m for _, m in pairs])
    return images, masks


SOURCE = procedural_source(NucleiParams, generate_nuclei)
