"""A procedural source from a toy generator that paints each image with its own index: the splits are the
generator run on seeded, disjoint indices, the tuning split on indices after all of theirs, the suite's
options are the generator's parameters, and an unknown option fails when the suite file is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.data.procedural import procedural_source
from bench.data.request import DataRequest
from bench.data.splits import split_indices
from bench.errors import UsageError

SIZES = {"train": 4, "calibration": 2, "evaluation": 3, "tuning": 2}
OTHERS = {s: n for s, n in SIZES.items() if s != "tuning"}  # 9 images before the tuning split


@dataclass(frozen=True)
class Params:
    height: int
    width: int
    level: int = 1
    label: int = 1


def _generate(seed: int, indices: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Image i is filled with seed * 100 + i (+ level); its mask with `label`, as int32."""
    values = (seed * 100 + indices + params.level - 1).astype(np.float32)
    images = np.broadcast_to(values[:, None, None, None], (len(indices), 1, params.height, params.width)).copy()
    return images, np.full((len(indices), params.height, params.width), params.label, np.int32)


def _request(**values: object) -> DataRequest:
    defaults: dict[str, object] = {
        "suite": "toy",
        "source": "toy-source",
        "classes": ("background", "object"),
        "in_channels": 1,
        "input_size": (2, 3),
        "split_sizes": SIZES,
        "split_seed": 5,
        "seed": 7,
        "tuning": 2,
        "where": Path("suites/toy.toml"),
    }
    return DataRequest(**{**defaults, **values})  # type: ignore[arg-type]


def _indices(images: np.ndarray, seed: int = 7) -> list[int]:
    return [int(v) - seed * 100 for v in images[:, 0, 0, 0]]


def test_each_split_is_the_generator_on_its_seeded_indices_at_the_suites_size():
    source = procedural_source(Params, _generate)
    assert source.procedural
    seen = []
    for split in ("train", "calibration", "evaluation"):
        data = source.load(_request(), split)
        assert data.images.shape == (SIZES[split], 1, 2, 3) and data.masks.dtype == np.int64
        assert _indices(data.images) == split_indices(9, OTHERS, 5, split).tolist()
        seen += _indices(data.images)
    assert sorted(seen) == list(range(9))  # disjoint, and every index of the other splits once


def test_the_tuning_split_takes_indices_after_the_other_splits_and_moves_none_of_them():
    source = procedural_source(Params, _generate)
    assert _indices(source.load(_request(), "tuning").images) == [9, 10]
    without = _request(tuning=0, split_sizes=OTHERS)
    for split in ("train", "evaluation"):
        assert _indices(source.load(without, split).images) == _indices(source.load(_request(), split).images)


def test_the_suites_options_are_the_generators_parameters():
    data = procedural_source(Params, _generate).load(_request(options={"level": 3, "label": 2}), "evaluation")
    assert _indices(data.images) == [i + 2 for i in split_indices(9, OTHERS, 5, "evaluation")]  # level 3: +2
    assert (data.masks == 2).all()


def test_an_unknown_option_names_the_suite_file_the_source_and_the_valid_options():
    source = procedural_source(Params, _generate)
    source.check(_request(options={"level": 2}))
    with pytest.raises(
        UsageError,
        match=r"^suites/toy\.toml: unknown option 'colour' for source 'toy-source'; valid options: label, level$",
    ):
        source.check(_request(options={"level": 2, "colour": "red", "height": 4}))
