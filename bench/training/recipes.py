"""Reference training recipes per (model, suite).

A quantization study is only meaningful on a model that really segments, so each real-data pairing
has a recipe tuned to reach a stated quality within a fixed CPU budget (at most 15 minutes on 2 cores);
the scores reached and the loss curve are stored in the checkpoint's metadata. Pairs without an entry
use the default recipe, which suits the small procedural suites.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """AdamW with one-cycle decay, cross-entropy plus soft Dice, random flips/rotations and brightness.

    `rotate` and `vflip` suit microscopy (no up or down); street scenes keep only horizontal flips.
    """

    steps: int = 200
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0
    augment: bool = True
    rotate: bool = True
    vflip: bool = True
    crop: tuple[int, int] | None = None  # random (H, W) training crops: cheaper steps on large images
    scale: tuple[float, float] | None = None  # random rescale range before the crop: fights overfitting
    threads: int = 2  # fixed, so the float arithmetic (and the checkpoint) repeats on any machine


DEFAULT_RECIPE = Recipe()

# street scenes: horizontal flips only, random rescale by 0.75-1.5 then random 128x160 crops of the
# 192x256 images, from scratch (no ImageNet weights can be downloaded). Without the rescale the 90 CamVid
# training images are overfitted (DeepLab: 0.425 mIoU at step 750, 0.398 at step 1000); with it DeepLab
# reached 0.435 and HRNet 0.491 at step 1000 (measured; the README has the table).
STREET_SCENES = Recipe(steps=1000, batch_size=8, lr=2e-3, rotate=False, vflip=False, crop=(128, 160), scale=(0.75, 1.5))

RECIPES: dict[tuple[str, str], Recipe] = {
    # nuclei: microscopy has no up or down, so rotations and both flips; random 128x128 crops of the
    # 256x256 images (4x cheaper steps, so 2x the steps in half the time). Target Dice >= 0.80; measured
    # 0.889 (nucleus IoU 0.80) in 363 s on 2 cores. 600 full-size steps at 3e-3 reached only 0.68 in 14 min.
    ("unet", "dsb2018"): Recipe(steps=1200, batch_size=8, lr=1e-3, crop=(128, 128)),
    ("deeplabv3plus-resnet18", "camvid"): STREET_SCENES,  # target mIoU >= 0.40 at 192x256
    ("hrnet-w18-small", "camvid"): STREET_SCENES,
}


def recipe_for(model: str, suite: str) -> Recipe:
    if (model, suite) in RECIPES:
        return RECIPES[(model, suite)]
    if suite in ("camvid", "synthetic-scenes"):  # scenes have an up: never rotate or flip vertically
        return Recipe(steps=DEFAULT_RECIPE.steps, rotate=False, vflip=False)
    return DEFAULT_RECIPE
