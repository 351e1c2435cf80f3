"""Reference training: the loop that trains a float model from a fixed seed (cached by `checkpoints`).

Quantization is only meaningful on a model that really segments; the checkpoint's metadata keeps the
loss curve and the evaluation scores reached, so a user can see what the reference was.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.data.suite import Suite
from bench.measure.metrics import SegmentationScores, score_predictions
from bench.models import create_model
from bench.training.recipes import DEFAULT_RECIPE, Recipe


def _rescale(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Image bilinear, mask nearest (labels must stay labels), by one random factor."""
    factor = rng.uniform(low, high)
    size = (round(x.shape[-2] * factor), round(x.shape[-1] * factor))
    image = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(x, np.float32))[None], size=size, mode="bilinear", align_corners=False
    )[0].numpy()
    mask = F.interpolate(torch.from_numpy(np.ascontiguousarray(y)).float()[None, None], size=size, mode="nearest")
    return image, mask[0, 0].numpy().astype(y.dtype)


def _augment(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    if recipe.scale is not None:
        x, y = _rescale(rng, x, y, *recipe.scale)
    if recipe.crop is not None:
        ch, cw = min(recipe.crop[0], x.shape[-2]), min(recipe.crop[1], x.shape[-1])
        top, left = int(rng.integers(x.shape[-2] - ch + 1)), int(rng.integers(x.shape[-1] - cw + 1))
        x, y = x[..., top : top + ch, left : left + cw], y[..., top : top + ch, left : left + cw]
    if recipe.rotate and x.shape[-1] == x.shape[-2]:
        k = int(rng.integers(4))
        x, y = np.rot90(x, k, axes=(-2, -1)), np.rot90(y, k, axes=(-2, -1))
    if rng.random() < 0.5:
        x, y = x[..., ::-1], y[..., ::-1]
    if recipe.vflip and rng.random() < 0.5:
        x, y = x[..., ::-1, :], y[..., ::-1, :]
    x = x * rng.uniform(0.8, 1.25) + rng.uniform(-0.05, 0.05)  # brightness and offset
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y)


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities; a single-channel (sigmoid) binary model gives [1 - p, p]."""
    if logits.shape[1] == 1:
        p = logits.sigmoid()
        return torch.cat([1 - p, p], dim=1)
    return logits.softmax(1)


def _soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    probs = _probabilities(logits) * valid[:, None]
    onehot = F.one_hot(target.clamp(min=0), probs.shape[1]).permute(0, 3, 1, 2) * valid[:, None]
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def _data_loss(logits: torch.Tensor, y: torch.Tensor, ignore: int) -> torch.Tensor:
    """Cross-entropy (binary cross-entropy for a single sigmoid output), void pixels excluded."""
    if logits.shape[1] == 1:
        valid = (y != ignore).float()
        bce = F.binary_cross_entropy_with_logits(logits[:, 0], (y == 1).float(), reduction="none")
        return (bce * valid).sum() / valid.sum().clamp(min=1)
    return F.cross_entropy(logits, y, ignore_index=ignore)


def predict_logits(model: nn.Module, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Logits (N, C, H, W) float32 of a float model on normalized images."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(model(torch.from_numpy(images[i : i + batch_size])).float().numpy())
    return np.concatenate(out)


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 16, threshold: float = 0.5) -> np.ndarray:
    """Class map (N, H, W) of a float model on normalized images (argmax, or a sigmoid threshold)."""
    from bench.measure.metrics import labels_from_logits

    return np.concatenate(
        [
            labels_from_logits(predict_logits(model, images[i : i + batch_size]), threshold)
            for i in range(0, len(images), batch_size)
        ]
    )


def evaluate_model(model: nn.Module, suite: Suite) -> SegmentationScores:
    """The float model's scores on the evaluation split: what the reference reached, kept in its checkpoint."""
    evaluation = suite.load("evaluation")
    predictions = predict(model, suite.normalize(evaluation.images))
    return score_predictions(
        predictions, evaluation.masks, suite.num_classes, suite.foreground_classes, suite.ignore_label, boundary=True
    )


def train_model(
    model_name: str, suite: Suite, recipe: Recipe = DEFAULT_RECIPE, progress: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Train from a fixed seed on the train split; returns the model and its metadata."""
    torch.manual_seed(recipe.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    rng = np.random.default_rng(recipe.seed)
    train = suite.load("train")
    images, masks = train.images, train.masks
    model = create_model(model_name, suite.in_channels, suite.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=recipe.steps, pct_start=0.1)
    ignore = suite.ignore_label if suite.ignore_label is not None else -100
    losses: list[float] = []
    start = time.perf_counter()
    bar = _progress(recipe.steps, f"train {model_name} on {suite.name}", progress)
    model.train()
    for _ in range(recipe.steps):
        idx = rng.choice(len(images), recipe.batch_size, replace=False)
        pairs = [_augment(rng, images[i], masks[i], recipe) if recipe.augment else (images[i], masks[i]) for i in idx]
        x = torch.from_numpy(suite.normalize(np.stack([p[0] for p in pairs])))
        y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
        valid = (y != ignore).float()
        logits = model(x)
        loss = _data_loss(logits, y, ignore) + _soft_dice_loss(logits, torch.where(y == ignore, 0, y), valid)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=False)  # a refresh per step floods logs
    bar.close()
    seconds = time.perf_counter() - start
    scores = evaluate_model(model, suite)
    torch.set_num_threads(previous_threads)
    meta = {
        "model": model_name,
        "suite": suite.name,
        "recipe": asdict(recipe),
        "loss_curve": [float(np.mean(losses[i : i + 10])) for i in range(0, len(losses), 10)],
        "train_seconds": round(seconds, 1),
        "evaluation_dice": scores.dice,
        "evaluation_miou": scores.miou,
        "evaluation_scores": scores.as_dict(list(suite.classes)),
        "torch_version": str(torch.__version__),
    }
    return model.eval(), meta


def _progress(total: int, desc: str, enabled: bool) -> Any:
    import sys

    from tqdm import tqdm

    interactive = sys.stderr.isatty()  # in logs, a line every 10 s instead of a redraw per step
    return tqdm(
        total=total,
        desc=desc,
        disable=not enabled,
        leave=interactive,
        dynamic_ncols=True,
        mininterval=0.1 if interactive else 10.0,
    )
