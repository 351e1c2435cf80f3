"""Training pieces that decide whether a reference model is right: augmentation keeps image and mask
aligned and labels intact, void pixels never reach the loss, recipes and the cache key are consistent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.suite import get_suite
from bench.training.checkpoints import checkpoint_key
from bench.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, recipe_for
from bench.training.trainer import _augment, _data_loss, _rescale, _soft_dice_loss


def _coded_pair(h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An image whose first channel equals its mask, so any misalignment shows."""
    rng = np.random.default_rng(0)
    mask = np.kron(rng.integers(0, 4, size=(h // 4, w // 4)), np.ones((4, 4), np.int64))  # 4x4 blocks
    mask[:, :5] = 11  # a void band
    image = np.stack([mask / 11.0, rng.random((h, w)), rng.random((h, w))]).astype(np.float32)
    return image, mask


@pytest.mark.parametrize("seed", range(5))
def test_augment_keeps_image_and_mask_aligned(seed: int) -> None:
    image, mask = _coded_pair()
    recipe = Recipe(crop=(16, 20), scale=(0.75, 1.5))
    x, y = _augment(np.random.default_rng(seed), image, mask, recipe)
    assert x.shape == (3, 16, 20) and y.shape == (16, 20) and x.dtype == np.float32
    assert set(np.unique(y)) <= {0, 1, 2, 3, 11}  # nearest-neighbour: no invented labels
    # brightness is affine on the coded channel: fit it away from label edges (bilinear blurs those)
    # and check that every such pixel's value follows its label
    interior = np.ones_like(y, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            interior &= np.roll(np.roll(y, dy, 0), dx, 1) == y
    interior[[0, -1]] = interior[:, [0, -1]] = False
    ref, coded = y[interior] / 11.0, x[0][interior]
    assert len(np.unique(ref)) >= 2
    a, b = np.polyfit(ref, coded, 1)
    # a label off by one block would be off by >= a/11 ~ 0.07; resampling blurs by far less
    assert a > 0.5 and np.abs(coded - (a * ref + b)).max() < 0.02


def test_rescale_changes_size_and_keeps_labels() -> None:
    image, mask = _coded_pair()
    x, y = _rescale(np.random.default_rng(1), image, mask, 1.5, 1.5)
    assert x.shape == (3, 36, 48) and y.shape == (36, 48) and y.dtype == mask.dtype
    assert set(np.unique(y)) == set(np.unique(mask))


def test_void_pixels_do_not_reach_the_loss() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    voided = target.clone()
    voided[:, :4] = 11
    other_logits = logits.clone()
    other_logits[:, :, :4] = torch.randn(2, 3, 4, 8) * 10  # whatever the model says on void is free
    valid = (voided != 11).float()
    safe = torch.where(voided == 11, 0, voided)
    for loss in (lambda lg: _data_loss(lg, voided, 11), lambda lg: _soft_dice_loss(lg, safe, valid)):
        assert torch.isclose(loss(logits), loss(other_logits))
    assert not torch.isclose(_data_loss(logits, target, 11), _data_loss(other_logits, target, 11))


def test_street_scene_recipes_never_turn_the_world_upside_down() -> None:
    for (model, suite), recipe in RECIPES.items():
        if suite == "camvid":
            assert not recipe.rotate and not recipe.vflip, model
    assert not recipe_for("unet", "camvid").vflip and recipe_for("unet", "synthetic-nuclei") == DEFAULT_RECIPE


def test_checkpoint_key_follows_the_recipe() -> None:
    suite = get_suite("synthetic-nuclei")
    assert checkpoint_key("unet", suite, DEFAULT_RECIPE) == checkpoint_key("unet", suite, Recipe())
    assert checkpoint_key("unet", suite, DEFAULT_RECIPE) != checkpoint_key("unet", suite, Recipe(scale=(0.9, 1.1)))
