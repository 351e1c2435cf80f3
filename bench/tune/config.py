"""What `segbench tune` was asked for, checked in full before any work, and saved as tune.json so that
`--resume` finishes the tune exactly as it was started.

The settings a tune shares with a run (threads, timing, folders, weights, split counts) are one
`SharedSettings` (bench/run/settings.py), handed whole to the run configuration a tune measures with;
tune.json keeps writing them flat, where it always has."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.backend import FLOAT_LAYERS_OPTION
from bench.cache import atomic_write_bytes
from bench.data.suite import Suite, get_suite
from bench.errors import UsageError
from bench.measure.timing import TimingConfig
from bench.results.bounds import Bound
from bench.run.config import RunConfig
from bench.run.matrix import BackendPlan
from bench.run.settings import SharedSettings
from bench.tune.budget import check_columns, parse_budgets

TUNE_FILE = "tune.json"


@dataclass(frozen=True)
class TuneConfig:
    suite: str
    model: str
    backend: str  # one int8 backend (`name` or `name:int8`)
    budgets: tuple[str, ...] = ()  # COLUMN>=BOUND / COLUMN<=BOUND; the first ranks the layers
    backend_options: dict[str, str] = field(default_factory=dict)  # the tuned backend's other options
    shared: SharedSettings = field(default_factory=SharedSettings)  # what a run takes too
    max_layers: int | None = None  # sensitivity for the N layers of lowest SQNR only (None: every layer)
    max_steps: int | None = None  # at most N layers in float before giving up (None: every measured layer)
    calibration_sizes: tuple[int, ...] = ()
    calibration_methods: tuple[str, ...] = ()
    seeds: int = 1
    sqnr_images: int = 4  # tuning images the SQNR proxy runs on

    @property
    def parsed_budgets(self) -> tuple[Bound, ...]:
        return tuple(Bound.parse(text) for text in self.budgets)

    @property
    def needs_gradcam(self) -> bool:
        return any(budget.needs_gradcam for budget in self.parsed_budgets)

    @property
    def studies_calibration(self) -> bool:
        return bool(self.calibration_sizes or self.calibration_methods)

    def run_config(self, backends: tuple[str, ...] | None = None) -> RunConfig:
        """The equivalent `segbench run` configuration (its checks, its references, its cells)."""
        from bench.run.matrix import REFERENCE

        name = self.backend.partition(":")[0]
        return RunConfig(
            **self.shared.fields(),
            suites=(self.suite,),
            models=(self.model,),
            backends=backends or (":".join(REFERENCE), self.backend),
            backend_options={name: dict(self.backend_options)} if self.backend_options else {},
            gradcam=self.needs_gradcam,
            gradcam_method="both" if any("@fakequant" in b for b in self.budgets) else "fd",
        )

    def validate(self) -> tuple[BackendPlan, Suite]:
        """Every value checked before any work; the tuned backend's plan and the suite."""
        plans, suite = self.plans()
        return plans[-1], suite

    def plans(self) -> tuple[list[BackendPlan], Suite]:
        """Every value checked before any work (the run's own checks, then what only tuning asks); the
        fp32 reference's plan first, the tuned backend's last, each backend loaded and asked once."""
        budgets = parse_budgets(self.budgets)  # declared metrics that tune scores, before any work
        if not budgets and not self.studies_calibration:
            raise UsageError(
                "segbench tune needs --budget (which layers to keep in float) or --calibration-sizes / "
                "--calibration-methods (how to calibrate), or both"
            )
        if FLOAT_LAYERS_OPTION in self.backend_options:
            raise UsageError(f"--option {self.backend}.{FLOAT_LAYERS_OPTION}: tune chooses the float layers itself")
        for flag, value, least in (("--max-layers", self.max_layers, 1), ("--max-steps", self.max_steps, 1)):
            if value is not None and value < least:
                raise UsageError(f"{flag} {value} is not valid; expected at least {least}")
        if self.seeds < 1:
            raise UsageError(f"--seeds {self.seeds} is not valid; expected at least 1")
        if self.sqnr_images < 1:
            raise UsageError(f"--sqnr-images {self.sqnr_images} is not valid; expected at least 1")
        plans = self.run_config().validate()
        plan = plans[-1]
        if plan.precision != "int8":
            raise UsageError(f"--backend {self.backend}: tune needs an int8 backend (got precision {plan.precision})")
        if budgets and FLOAT_LAYERS_OPTION not in plan.options.as_strings():
            raise UsageError(
                f"backend '{plan.name}' cannot keep layers in float (it has no {FLOAT_LAYERS_OPTION} option)"
            )
        suite = get_suite(self.suite, data_dir=self.shared.data_dir, splits=self.shared.splits)
        if not suite.split_counts.get("tuning"):
            raise UsageError(
                f"{suite.path}: suite '{suite.name}' has no tuning split; add tuning = N under [splits] "
                '(and tuning_from = "train" when every item is in a split already)'
            )
        if budgets:
            from bench.gradcam.divergence import GradcamSummary
            from bench.measure.quality import quality_columns

            gradcam = list(GradcamSummary.__dataclass_fields__)
            columns = [
                *quality_columns(suite.classes, suite.foreground_classes, suite.ignore_label),
                *gradcam,
                *(f"{c}@fakequant" for c in gradcam),
            ]
            check_columns(budgets, columns)
        if self.studies_calibration:
            self._validate_calibration(plan, suite)
        return plans, suite

    def _validate_calibration(self, plan: BackendPlan, suite: Suite) -> None:
        from bench.data.sources import calibration_pool

        pool = len(calibration_pool(suite.request))
        for size in self.calibration_sizes:
            if not 1 <= size <= pool:
                raise UsageError(
                    f"--calibration-sizes {size} is not valid for suite '{suite.name}'; expected 1..{pool} "
                    "(its calibration split plus its training split, tuning images left out)"
                )
        for method in self.calibration_methods:
            plan.backend.parse_options({**self.backend_options, "calibration": method})

    def to_json(self) -> dict[str, Any]:
        """tune.json: the shared settings flat, in the place TuneConfig's own fields of those names had (the
        split counts last), so a tune folder reads the same whichever version wrote it."""
        own = asdict(self)
        shared = own.pop("shared")
        splits = shared.pop("splits")
        names = list(own)
        at = names.index("max_layers")  # the first field after the shared ones
        data = {**{k: own[k] for k in names[:at]}, **shared, **{k: own[k] for k in names[at:]}, "splits": splits}
        for key in ("results_root", "data_dir", "weights", "checkpoint"):
            value = getattr(self.shared, key)
            data[key] = None if value is None else str(Path(value).resolve() if key != "results_root" else value)
        if (self.suite or "").endswith(".toml"):  # a suite file by path: absolute, as a resume may start elsewhere
            data["suite"] = str(Path(self.suite).resolve())
        return data


def save_tune_config(config: TuneConfig, folder: Path) -> None:
    atomic_write_bytes(folder / TUNE_FILE, json.dumps(config.to_json(), indent=2).encode())


def load_tune_config(folder: Path) -> TuneConfig:
    path = folder / TUNE_FILE
    if not path.is_file():
        raise UsageError(f"--resume {folder}: no {TUNE_FILE} there; expected a segbench tune folder")
    try:
        data = {**json.loads(path.read_text())}  # anything but an object: the TypeError below
        names = {f.name for f in dataclasses.fields(SharedSettings)}
        shared = SharedSettings(
            **{
                **{k: v for k, v in data.items() if k in names},
                "timing": TimingConfig(**data["timing"]),
                "results_root": folder.parent,
                **{k: Path(data[k]) if data.get(k) else None for k in ("data_dir", "weights", "checkpoint")},
            }
        )
        return TuneConfig(
            **{
                **{k: v for k, v in data.items() if k not in names},
                "budgets": tuple(data["budgets"]),
                "shared": shared,
                "calibration_sizes": tuple(data["calibration_sizes"]),
                "calibration_methods": tuple(data["calibration_methods"]),
            }
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--resume {folder}: {path.name} is unreadable ({type(exc).__name__}: {exc})") from None
