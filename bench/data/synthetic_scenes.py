"""Procedural street scenes: a multi-class suite (sky, building, tree, road, sidewalk, car, person)
that needs no download, for exercising quantization on more than a binary task.

Like `bench.data.synthetic_nuclei`, each image has its own generator seeded by (suite seed, image index), so any
image can be regenerated alone and bit-identically. Objects are painted back to front into a label
map and an image at the same time; the label map is the exact ground truth, and the image then gets
what makes the task non-trivial: textures, a perspective road with lane marks, per-image lighting,
colour cast and cast shadows, blur and sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bench.data.procedural import procedural_source

CLASSES = ("sky", "building", "tree", "road", "sidewalk", "car", "person")
SKY, BUILDING, TREE, ROAD, SIDEWALK, CAR, PERSON = range(len(CLASSES))


@dataclass(frozen=True)
class SceneParams:
    """Ranges of the generator; defaults give 128x128 scenes with 1-4 cars and 1-4 people."""

    height: int = 128
    width: int = 128
    buildings_min: int = 2
    buildings_max: int = 5
    trees_min: int = 1
    trees_max: int = 3
    cars_min: int = 1
    cars_max: int = 4
    people_min: int = 1
    people_max: int = 4
    noise_min: float = 0.01
    noise_max: float = 0.05
    blur_sigma_max: float = 0.8


class _Canvas:
    """An RGB image and its label map, painted together so the ground truth is exact."""

    def __init__(self, p: SceneParams, rng: np.random.Generator):
        self.p, self.rng = p, rng
        self.image = np.zeros((3, p.height, p.width), np.float32)
        self.labels = np.zeros((p.height, p.width), np.int64)
        self.yy, self.xx = np.mgrid[0 : p.height, 0 : p.width].astype(np.float32)

    def paint(self, region: np.ndarray, label: int, colour: np.ndarray, texture: np.ndarray | float = 1.0) -> None:
        values = np.asarray(colour, np.float32)[:, None]
        self.image[:, region] = values * texture[region] if isinstance(texture, np.ndarray) else values * texture
        self.labels[region] = label

    def field(self, sigma: float) -> np.ndarray:
        """Smooth noise in [-1, 1], for textures and lighting."""
        f = ndimage.gaussian_filter(self.rng.standard_normal(self.labels.shape), sigma)
        return (f / (np.abs(f).max() + 1e-8)).astype(np.float32)

    def box(self, top: float, bottom: float, left: float, right: float) -> np.ndarray:
        return (self.yy >= top) & (self.yy < bottom) & (self.xx >= left) & (self.xx < right)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        return ((self.yy - cy) / ry) ** 2 + ((self.xx - cx) / rx) ** 2 <= 1.0


def _sky(c: _Canvas, horizon: float) -> None:
    rng = c.rng
    top, low = np.array([0.25, 0.45, 0.85]) * rng.uniform(0.8, 1.1), np.array([0.7, 0.8, 0.95])
    t = np.clip(c.yy / max(horizon, 1.0), 0, 1)
    gradient = top[:, None, None] * (1 - t) + low[:, None, None] * t
    clouds = 0.8 * np.clip(c.field(6.0) * rng.uniform(0.5, 1.8), 0, 1)
    c.image[:] = gradient * (1 - clouds) + 0.95 * clouds
    c.labels[:] = SKY


def _ground(c: _Canvas, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Sidewalk everywhere below the horizon, then a perspective road; returns the road's centre and
    half width per row."""
    rng, p = c.rng, c.p
    ground = c.yy >= horizon
    paving = 1.0 + 0.12 * c.field(1.0) + 0.1 * c.field(4.0)
    c.paint(ground, SIDEWALK, np.array([0.72, 0.66, 0.58]) * rng.uniform(0.8, 1.1), paving)
    depth = np.clip((np.arange(p.height) - horizon) / (p.height - horizon), 0, 1)  # 0 at the horizon, 1 at the bottom
    vanish = rng.uniform(0.35, 0.65) * p.width
    bottom_centre = vanish + rng.uniform(-0.25, 0.25) * p.width
    centre = vanish + (bottom_centre - vanish) * depth
    half = (0.03 + rng.uniform(0.3, 0.5) * depth) * p.width
    road = ground & (np.abs(c.xx - centre[:, None]) < half[:, None])
    asphalt = 1.0 + 0.12 * c.field(0.7)
    c.paint(road, ROAD, np.array([0.3, 0.3, 0.32]) * rng.uniform(0.8, 1.2), asphalt)
    dashes = (
        road
        & (np.abs(c.xx - centre[:, None]) < 0.02 * half[:, None] + 0.4)
        & (np.mod(c.yy * (1 + depth[:, None]), 10) < 5)
    )
    c.image[:, dashes] = 0.92  # lane marks belong to the road
    return centre, half


def _buildings(c: _Canvas, horizon: float) -> None:
    rng, p = c.rng, c.p
    for _ in range(int(rng.integers(p.buildings_min, p.buildings_max + 1))):
        left = rng.uniform(-0.1, 0.85) * p.width
        width = rng.uniform(0.12, 0.35) * p.width
        top = rng.uniform(0.05, 0.8) * horizon
        region = c.box(top, horizon + 1, left, left + width)
        colour = rng.choice([[0.62, 0.3, 0.22], [0.5, 0.33, 0.22], [0.82, 0.7, 0.5], [0.75, 0.55, 0.35]])
        colour = colour * rng.uniform(0.85, 1.15)
        wx, wy = rng.uniform(5, 9), rng.uniform(6, 10)
        windows = (np.mod(c.xx - left, wx) > 2) & (np.mod(c.yy - top, wy) > 3)
        texture = np.where(windows, rng.uniform(0.55, 0.7), 1.0) + 0.05 * c.field(1.0)
        c.paint(region, BUILDING, colour, texture)


def _tree(c: _Canvas, horizon: float) -> None:
    rng, p = c.rng, c.p
    base = horizon + rng.uniform(0.0, 0.2) * (p.height - horizon)
    scale = 0.6 + (base - horizon) / (p.height - horizon)  # nearer is bigger
    x = rng.uniform(0.05, 0.95) * p.width
    trunk_h, trunk_w = 0.12 * p.height * scale, 0.025 * p.width * scale + 1
    crown_r = rng.uniform(0.08, 0.14) * p.width * scale
    cy = base - trunk_h - 0.7 * crown_r
    c.paint(c.box(base - trunk_h - crown_r * 0.5, base, x - trunk_w, x + trunk_w), TREE, np.array([0.35, 0.22, 0.12]))
    ragged = (((c.yy - cy) / crown_r) ** 2 + ((c.xx - x) / (crown_r * 1.1)) ** 2) + 0.35 * c.field(1.5) <= 1.0
    leaves = 1.0 + 0.35 * c.field(0.8)
    c.paint(ragged, TREE, np.array([0.2, 0.5, 0.15]) * rng.uniform(0.7, 1.2), leaves)


def _car(c: _Canvas, horizon: float, near: float, centre: np.ndarray, half: np.ndarray) -> None:
    """A car standing on the road; `near` in [0, 1) places it from far (0) to near (1)."""
    rng, p = c.rng, c.p
    bottom = horizon + (0.3 + 0.65 * near) * (p.height - horizon)
    row = int(min(bottom, p.height - 1))
    scale = (bottom - horizon) / (p.height - horizon)
    width = (0.16 + 0.22 * scale) * p.width
    height = 0.5 * width
    x = centre[row] + rng.uniform(-0.6, 0.6) * max(half[row] - width / 2, 0)
    left, top = x - width / 2, bottom - height
    colour = rng.choice([[0.75, 0.1, 0.1], [0.1, 0.2, 0.7], [0.9, 0.9, 0.9], [0.85, 0.75, 0.1], [0.9, 0.45, 0.1]])
    body = c.box(top + 0.4 * height, bottom - 0.12 * height, left, left + width)
    cabin_top, inset = top, 0.18 * width
    cabin = c.box(cabin_top, top + 0.4 * height, left + inset, left + width - inset)
    shine = 1.0 + 0.1 * np.clip((top + 0.6 * height - c.yy) / height, -1, 1)
    c.paint(body | cabin, CAR, colour * rng.uniform(0.85, 1.1), shine)
    glass = c.box(cabin_top + 0.1 * height, top + 0.38 * height, left + inset + 2, left + width - inset - 2)
    c.image[:, glass & (c.labels == CAR)] = np.array([0.25, 0.3, 0.38], np.float32)[:, None]
    for wx in (left + 0.22 * width, left + 0.78 * width):
        c.paint(c.ellipse(bottom - 0.14 * height, wx, 0.14 * height, 0.1 * width), CAR, np.array([0.06, 0.06, 0.06]))


def _person(c: _Canvas, horizon: float, near: float) -> None:
    """A pedestrian anywhere on the ground; `near` in [0, 1) places them from far (0) to near (1)."""
    rng, p = c.rng, c.p
    bottom = horizon + (0.15 + 0.8 * near) * (p.height - horizon)
    scale = 0.7 + (bottom - horizon) / (p.height - horizon)
    height = rng.uniform(0.22, 0.32) * p.height * scale
    x = rng.uniform(0.05, 0.95) * p.width
    width = 0.4 * height
    shirt = rng.choice([[0.85, 0.2, 0.6], [0.2, 0.75, 0.35], [0.95, 0.85, 0.2], [0.25, 0.75, 0.85], [0.6, 0.3, 0.85]])
    legs = c.box(bottom - 0.45 * height, bottom, x - 0.4 * width, x + 0.4 * width) & ~c.box(
        bottom - 0.4 * height, bottom, x - 0.08 * width, x + 0.08 * width
    )
    c.paint(legs, PERSON, np.array([0.15, 0.15, 0.3]))
    c.paint(c.ellipse(bottom - 0.62 * height, x, 0.22 * height, 0.5 * width), PERSON, shirt)
    c.paint(c.ellipse(bottom - 0.9 * height, x, 0.1 * height, 0.28 * width), PERSON, np.array([0.85, 0.65, 0.5]))


def generate_scene(seed: int, index: int, p: SceneParams = SceneParams()) -> tuple[np.ndarray, np.ndarray]:
    """One (image, mask) pair: image float32 (3, H, W) in [0, 1], mask int64 (H, W) with class indices."""
    rng = np.random.default_rng([seed, index])
    c = _Canvas(p, rng)
    horizon = rng.uniform(0.35, 0.55) * p.height
    _sky(c, horizon)
    _buildings(c, horizon)
    centre, half = _ground(c, horizon)
    for _ in range(int(rng.integers(p.trees_min, p.trees_max + 1))):
        _tree(c, horizon)
    # cars and people are painted far to near, so nearer ones occlude farther ones
    agents = [("car", rng.uniform()) for _ in range(int(rng.integers(p.cars_min, p.cars_max + 1)))]
    agents += [("person", rng.uniform()) for _ in range(int(rng.integers(p.people_min, p.people_max + 1)))]
    for kind, near in sorted(agents, key=lambda a: a[1]):
        if kind == "car":
            _car(c, horizon, near, centre, half)
        else:
            _person(c, horizon, near)
    # lighting: exposure, colour cast, a soft cast shadow across the scene, then optics and sensor
    light = rng.uniform(0.6, 1.2) * rng.uniform(0.9, 1.1, size=3).astype(np.float32)[:, None, None]
    shadow = 1.0 - rng.uniform(0.0, 0.35) * (c.field(12.0) > rng.uniform(-0.2, 0.3))
    image = c.image * light * shadow
    sigma = rng.uniform(0.0, p.blur_sigma_max)
    if sigma > 0.05:
        image = ndimage.gaussian_filter(image, (0, sigma, sigma))
    image = image + rng.normal(0, rng.uniform(p.noise_min, p.noise_max), size=image.shape)
    return np.clip(image, 0, 1).astype(np.float32), c.labels


def generate_scenes(seed: int, indices: np.ndarray, p: SceneParams = SceneParams()) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, H, W) float32 and masks (N, H, W) int64 for the given image indices."""
    pairs = [generate_scene(seed, int(i), p) for i in indices]
    if not pairs:
        return np.zeros((0, 3, p.height, p.width), np.float32), np.zeros((0, p.height, p.width), np.int64)
    return np.stack([img for img, _ in pairs]), np.stack([m for _, m in pairs])


SOURCE = procedural_source(SceneParams, generate_scenes)
