"""What the procedural sources share: a generator's parameters are the suite file's options, and a split is
the generator run on the split's seeded image indices, so it needs no download and repeats bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np

from bench.data.request import SPLITS, DataRequest, Source, SplitData
from bench.data.splits import split_indices
from bench.errors import UsageError


def procedural_source(
    params_type: type, generate: Callable[[int, np.ndarray, Any], tuple[np.ndarray, np.ndarray]]
) -> Source:
    """A `Source` from a generator `generate(seed, indices, params) -> (images, masks)` and its parameters'
    dataclass (its `height` and `width` come from the suite's input size)."""
    names = {f.name for f in fields(params_type)} - {"height", "width"}

    def load(request: DataRequest, split: str) -> SplitData:
        params = params_type(height=request.input_size[0], width=request.input_size[1], **request.options)
        sizes = {s: request.split_sizes[s] for s in SPLITS if s != "tuning"}
        total = sum(sizes.values())
        if split == "tuning":  # images no other split has: the generator's indices after theirs
            indices = np.arange(total, total + request.tuning)
        else:  # the permutation of the other splits is the one they had before tuning existed
            indices = split_indices(total, sizes, request.split_seed, split)
        images, masks = generate(request.seed, indices, params)
        return SplitData(images=images, masks=masks.astype(np.int64))

    def check(request: DataRequest) -> None:
        """A typo in the options fails when the suite file is read."""
        if unknown := sorted(set(request.options) - names):
            raise UsageError(
                f"{request.where}: unknown option '{unknown[0]}' for source '{request.source}'; "
                f"valid options: {', '.join(sorted(names))}"
            )

    return Source(load=load, check=check)
