"""Reference training recipes per (model, recipe name).

A quantization study is only meaningful on a model that really segments, so each real-data pairing
has a recipe tuned to reach a stated quality within a fixed CPU budget (at most 15 minutes on 2 cores);
the scores reached and the loss curve are stored in the checkpoint's metadata. A suite file names its
recipe (`recipe = "dsb2018"`; without the key, the suite's own name where a recipe has it, else
"default"), so a copy of a built-in suite under a new name trains as the original did. Models without
an entry of their own take the name's base recipe; "default" suits the small procedural suites.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.data.suite import Suite


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
# reached 0.435 and HRNet 0.491 at step 1000 (measured; docs/suites-and-models.md has the table).
STREET_SCENES = Recipe(steps=1000, batch_size=8, lr=2e-3, rotate=False, vflip=False, crop=(128, 160), scale=(0.75, 1.5))

# scenes have an up: never rotate or flip vertically
SCENES = Recipe(steps=DEFAULT_RECIPE.steps, rotate=False, vflip=False)

# a recipe name -> the recipe of every model that has no entry of its own in RECIPES
BASE_RECIPES: dict[str, Recipe] = {
    "default": DEFAULT_RECIPE,
    "dsb2018": DEFAULT_RECIPE,
    "camvid": SCENES,
    "synthetic-scenes": SCENES,
}

RECIPES: dict[tuple[str, str], Recipe] = {
    # nuclei: microscopy has no up or down, so rotations and both flips; random 128x128 crops of the
    # 256x256 images (4x cheaper steps, so 2x the steps in half the time). Target Dice >= 0.80; measured
    # 0.889 (nucleus IoU 0.80) in 363 s on 2 cores. 600 full-size steps at 3e-3 reached only 0.68 in 14 min.
    ("unet", "dsb2018"): Recipe(steps=1200, batch_size=8, lr=1e-3, crop=(128, 128)),
    ("deeplabv3plus-resnet18", "camvid"): STREET_SCENES,  # target mIoU >= 0.40 at 192x256
    ("hrnet-w18-small", "camvid"): STREET_SCENES,
    # the mobile models from scratch on the same 90 images: the same jitter, which the thin MobileNets
    # need no less than ResNet-18 (their step times: docs/suites-and-models.md; not yet trained to the end here)
    ("deeplabv3plus-mobilenetv2", "camvid"): STREET_SCENES,
    ("lraspp-mobilenetv3", "camvid"): STREET_SCENES,
    # SegFormer-B0 from scratch: the transformer takes a lower peak lr than the CNNs' 2e-3..3e-3 (AdamW,
    # one-cycle). On synthetic-nuclei 1e-3 reached Dice 0.867 after 20 steps and 0.952 after 100; 6e-5, the
    # paper's lr for a pretrained encoder, 0.746 after 100 (measured on 2 cores shared with other work:
    # 255-644 s for 100 steps). The other suites keep their base recipe at lr 1e-3 (not measured yet).
    ("segformer-b0", "default"): Recipe(steps=100, lr=1e-3),
    ("segformer-b0", "dsb2018"): Recipe(steps=1200, batch_size=8, lr=1e-3, crop=(128, 128)),
    ("segformer-b0", "camvid"): replace(STREET_SCENES, lr=1e-3),
    ("segformer-b0", "synthetic-scenes"): replace(SCENES, lr=1e-3),
}


def recipe_names() -> list[str]:
    """The names a suite file's `recipe` may take."""
    return sorted(BASE_RECIPES)


def suite_recipe(model: str, suite: Suite) -> tuple[str, Recipe]:
    """(name, recipe) that trains `model` on `suite`: the recipe the suite file names, else the one named
    like the suite (the built-in suites before they named theirs), else "default". A name the file gives
    that no recipe has is a usage error naming the file."""
    names = recipe_names()
    if suite.recipe is None:
        name = suite.name if suite.name in names else "default"
    elif suite.recipe in names:
        name = suite.recipe
    else:
        where = suite.path or f"suite '{suite.name}'"
        raise UsageError(
            f"{where}: recipe = {suite.recipe!r} is not a training recipe; valid recipes: {', '.join(names)}"
        )
    return name, recipe_for(model, name)


def recipe_for(model: str, name: str) -> Recipe:
    """The recipe `name` (a suite's `recipe`) for `model`; an unknown name is the default recipe (suite
    files are checked against `recipe_names` when they are read)."""
    if (model, name) in RECIPES:
        return RECIPES[(model, name)]
    return BASE_RECIPES.get(name, DEFAULT_RECIPE)


def describe(recipe: Recipe) -> str:
    """The recipe in a few words, for the line that says what trains."""
    return f"{recipe.steps} steps, batch {recipe.batch_size}, lr {recipe.lr:g}"
