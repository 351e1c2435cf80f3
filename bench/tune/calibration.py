"""The calibration study: how much the number of calibration images and the calibration method matter.

Every (method, size, seed) draw is a variant of its own (the drawn images are an input of the artifact,
so of its cache key), calibrated and scored on the tuning split without timing: calibration.parquet,
whose spread over seeds the report sets against each size.
"""

from __future__ import annotations

from bench.data.suite import Suite
from bench.run.cell import evaluate_cell
from bench.tune.config import TuneConfig
from bench.tune.records import CalibrationRow, VariantScore
from bench.tune.store import TuneStore
from bench.tune.variants import Log, Variants, label


def calibration_study(config: TuneConfig, suite: Suite, variants: Variants, store: TuneStore, log: Log) -> None:
    """Every (method, size, seed) calibrated and scored on the tuning split: calibration.parquet."""
    methods: tuple[str | None, ...] = config.calibration_methods or (None,)
    sizes = config.calibration_sizes or (suite.split_sizes["calibration"],)
    total = len(methods) * len(sizes) * config.seeds
    i = 0
    for method in methods:
        for size in sizes:
            for seed in range(config.seeds):
                i += 1
                name = method or "default"
                if store.find("calibration", method=name, size=size, seed=seed) is not None:
                    continue
                prefix = f"[calibration {i}/{total}] {name}, {size} images, seed {seed}"
                outcome = evaluate_cell(
                    variants.with_calibration(method, size, seed),
                    variants.plan,
                    config.shared.cell_timeout_s,
                    label(log, prefix),
                )
                row = CalibrationRow(name, size, seed, VariantScore.of(outcome))
                store.append("calibration", row.columns())
                drift = f", miou_drift {row.score.row['miou_drift']:+.4f}" if outcome.ok else ""
                log(f"{prefix}: {outcome.status}{drift}")
