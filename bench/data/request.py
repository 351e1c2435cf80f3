"""What a data source is asked for: a small frozen excerpt of a suite, and the split it returns.

Loaders never see the whole `Suite` (colours, normalization, Grad-CAM settings are not theirs to
read), which keeps `bench.data.suite` the only module that knows suite files and lets every source
module depend on this one alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "calibration", "evaluation", "tuning")
# A split count as a suite file (or --split) gives it: an integer, a fraction 0 < f <= 1 of the items the
# split draws from, or "all" of the items the other splits leave; resolved to an integer once the data
# folder is listed (`bench.data.splits.resolve_counts`).
Count = int | float | str
# Where the tuning split comes from: items no other split uses, or (small data sets, where every item is
# already in a split) a seeded subset of the training split; either way never calibration or evaluation.
TUNING_SOURCES = ("held-out", "train")


@dataclass(frozen=True)
class SplitData:
    """Images (N, C, H, W) float32 in [0, 1] before normalization, masks (N, H, W) int64."""

    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class DataRequest:
    """Everything that determines a suite's images and masks, and nothing else."""

    suite: str  # the suite's name, for messages and cache file names
    source: str
    classes: tuple[str, ...]
    in_channels: int
    input_size: tuple[int, int]
    split_sizes: Mapping[str, int]
    split_seed: int
    seed: int = 0
    ignore_label: int | None = None
    tuning: int = 0  # the tuning split's size
    tuning_from: str = "held-out"  # one of TUNING_SOURCES; held-out: split_sizes has "tuning" too
    options: Mapping[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None  # resolved data folder; None for procedural sources
    where: Path | None = None  # the suite file, named in messages about its content

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def config(self, include_tuning: bool = True) -> dict[str, Any]:
        """The data's identity, for cache keys (the data folder too, for real data). The tuning split
        changes neither the training nor the evaluation data, so a checkpoint's key leaves it out
        (`include_tuning=False`), and a suite without one keeps the keys it had before tuning existed."""
        sizes = {s: n for s, n in self.split_sizes.items() if s != "tuning"}
        config = {
            "name": self.suite,
            "source": self.source,
            "classes": self.classes,
            "in_channels": self.in_channels,
            "input_size": self.input_size,
            "split_sizes": sizes,
            "split_seed": self.split_seed,
            "seed": self.seed,
            "ignore_label": self.ignore_label,
            "options": dict(self.options),
        }
        if include_tuning and self.tuning:
            config["tuning"] = {"size": self.tuning, "from": self.tuning_from}
        if self.data_dir is not None:
            config["data_dir"] = str(self.data_dir)
        return config


def _no_check(request: DataRequest) -> None:
    """Sources without options accept every suite file that passed the common checks."""


def _as_is(request: DataRequest) -> DataRequest:
    """Sources whose layout has no variants take the suite file as it is."""
    return request


@dataclass(frozen=True)
class Source:
    """One kind of data, registered in `bench.data.sources` under the name suite files use.

    load(request, split) -> the split's images and masks;
    check(request) -> raise `UsageError` naming the suite file for options this source rejects,
        when the file is read (before any work);
    probe(request) -> raise `UsageError` or `OSError` when the data is not there (`segbench list
        suites`); None for a procedural source, which reads no files;
    count(request, split) -> (the folder `split` draws its items from, how many items it holds), so that
        fractions and "all" in a suite file become counts; None for a procedural source;
    fit(request) -> the request fitted to what the data folder holds (CamVid: evaluation on test/ where
        it exists), when the suite file is read; what it sets is part of the data's identity.
    """

    load: Callable[[DataRequest, str], SplitData]
    check: Callable[[DataRequest], None] = _no_check
    probe: Callable[[DataRequest], object] | None = None
    count: Callable[[DataRequest, str], tuple[Path, int]] | None = None
    fit: Callable[[DataRequest], DataRequest] = _as_is

    @property
    def procedural(self) -> bool:
        return self.probe is None
