"""The settings `segbench run` and `segbench tune` both take: threads, batch size, timing, where results
go, the per-cell timeout, progress, the data folder, the reference weights and the split counts.

They are one record so that the command line builds them once, from the options both commands share
(`bench.cli.options._shared_settings`), and a tune hands them whole to the run configuration it measures
with (`TuneConfig.run_config`). `RunConfig` keeps them as fields of its own, under the same names, types
and defaults (tests/bench/run/test_settings.py holds the two alike): run.json is written from those
fields and read back by --resume, merge, report and every Ray task, and a `RunConfig` is built in many
places; `fields()` spreads a `SharedSettings` into one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure.timing import TimingConfig


@dataclass(frozen=True)
class SharedSettings:
    threads: int = 1
    batch_size: int = 1
    timing: TimingConfig = field(default_factory=TimingConfig)
    results_root: Path = Path("results")
    cell_timeout_s: float = 1800.0
    progress: bool = True
    data_dir: Path | None = None  # the suite's data folder (--data-dir); default: the suite's own search
    weights: Path | None = None  # a user's state dict for the one (external) model (--weights)
    checkpoint: Path | None = None  # a reference checkpoint from `segbench train --export` (--checkpoint)
    splits: dict[str, int | float | str] = field(default_factory=dict)  # --split: counts replacing the suite's

    def fields(self) -> dict[str, Any]:
        """Each setting by name, as keyword arguments of `RunConfig` (the split counts a copy of their own)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"splits": dict(self.splits)}
