"""The one registry of data sources: the name a suite file gives as `source` -> its `Source`.

Procedural sources (drawn from the suite's seed, no download) and layouts of real data sets on disk
register the same way; loaded splits are kept for the life of the process, since a cell's stages ask
for the same split more than once.
"""

from __future__ import annotations

import numpy as np

from bench.cache import stable_hash
from bench.data import busi, camvid, dsb2018, folders, synthetic_nuclei, synthetic_scenes
from bench.data.request import SPLITS, DataRequest, Source, SplitData
from bench.errors import UsageError, unknown_name

SOURCES: dict[str, Source] = {
    "synthetic-nuclei": synthetic_nuclei.SOURCE,
    "synthetic-scenes": synthetic_scenes.SOURCE,
    "dsb2018": dsb2018.SOURCE,
    "camvid": camvid.SOURCE,
    "busi": busi.SOURCE,
    "folders": folders.SOURCE,
}

_LOADED: dict[tuple[str, str], SplitData] = {}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise unknown_name("suite source", name, list(SOURCES))
    return SOURCES[name]


def load_split(request: DataRequest, split: str) -> SplitData:
    """One split of the data, decoded (or generated) once per process."""
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
    if split == "tuning" and not request.tuning:
        raise UsageError(
            f"{request.where or request.suite}: suite '{request.suite}' has no tuning split; "
            'add tuning = N under [splits] (and tuning_from = "train" when every item is in a split already)'
        )
    key = (stable_hash(request.config()), split)
    if key not in _LOADED:
        if split == "tuning" and request.tuning_from == "train":
            train = load_split(request, "train")
            keep = tuning_positions(request)
            _LOADED[key] = SplitData(images=train.images[keep], masks=train.masks[keep])
        else:
            _LOADED[key] = get_source(request.source).load(request, split)
    return _LOADED[key]


def tuning_positions(request: DataRequest) -> np.ndarray:
    """Positions in the training split of a tuning split drawn from it (`tuning_from = "train"`): a
    seeded subset, so it is the same on every machine and never touches calibration or evaluation."""
    rng = np.random.default_rng([request.split_seed, 1])
    return np.sort(rng.choice(request.split_sizes["train"], request.tuning, replace=False))


def calibration_pool(request: DataRequest) -> SplitData:
    """Where calibration sets of other sizes are drawn from (`segbench tune --calibration-sizes`): the
    calibration split, then the training split less any tuning images, so a draw never overlaps the
    tuning or evaluation split. The calibration split comes first: a draw of its own size and seed 0
    is the calibration split itself."""
    calibration, train = load_split(request, "calibration"), load_split(request, "train")
    keep = np.ones(len(train), bool)
    if request.tuning_from == "train" and request.tuning:
        keep[tuning_positions(request)] = False
    return SplitData(
        images=np.concatenate([calibration.images, train.images[keep]]),
        masks=np.concatenate([calibration.masks, train.masks[keep]]),
    )


def draw_calibration(request: DataRequest, size: int, seed: int) -> np.ndarray:
    """`size` calibration images (before normalization) from `calibration_pool`, seeded; seed 0 at the
    calibration split's own size is the calibration split, in its order."""
    pool = calibration_pool(request)
    if not 1 <= size <= len(pool):
        raise UsageError(
            f"calibration size {size} is not valid for suite '{request.suite}'; expected 1..{len(pool)} "
            "(its calibration split plus its training split, tuning images left out)"
        )
    if seed == 0 and size == request.split_sizes["calibration"]:
        return pool.images[:size]
    order = np.random.default_rng([request.split_seed, 2, seed]).permutation(len(pool))
    return pool.images[np.sort(order[:size])]
