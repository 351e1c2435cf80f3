"""The matrix of cells: which backends run (resolved once), and one `CellSpec` per suite x model x backend.

Every backend named by the run is loaded, its precision and options checked and its availability on
the device asked once, in the parent, before any work; a cell then carries everything a worker needs
in its spec, and an unavailable backend's cells become rows without starting any process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import Backend, BackendOptions, get_backend, list_backends
from bench.errors import UsageError, unknown_name
from bench.measure.scenarios import ScenarioConfig
from bench.measure.timing import TimingConfig
from bench.results.speedup import REFERENCE

REFERENCE_BACKEND, REFERENCE_PRECISION = REFERENCE


def parse_backend_spec(spec: str) -> tuple[str, str | None]:
    """`name` or `name:precision` (e.g. `torch-eager:bf16`)."""
    name, _, precision = spec.partition(":")
    return name, precision or None


@dataclass(frozen=True)
class BackendPlan:
    """One `--backends` entry, resolved: the backend, its precision and options, and whether it can run."""

    backend: Backend
    precision: str
    options: BackendOptions
    unavailable: str | None  # why it cannot run on the run's device here; None when it can

    @property
    def name(self) -> str:
        return self.backend.name


def plan_backends(specs: tuple[str, ...], options: dict[str, dict[str, str]], device: str) -> list[BackendPlan]:
    """Each spec checked (name, precision, options) and asked once whether it can run; usage errors first."""
    valid = list_backends()
    names = [parse_backend_spec(spec)[0] for spec in specs]
    for name in options:
        if name not in names:
            raise UsageError(f"--option names backend '{name}', which is not in --backends")
    plans = []
    for spec in specs:
        name, precision = parse_backend_spec(spec)
        if name not in valid:
            raise unknown_name("backend", name, valid)
        backend = get_backend(name)
        if precision is not None and precision not in backend.precisions:
            raise UsageError(f"backend '{name}' has no precision '{precision}'; valid: {', '.join(backend.precisions)}")
        parsed = backend.parse_options(options.get(name, {}))
        plans.append(BackendPlan(backend, precision or backend.default_precision, parsed, None))
    return [BackendPlan(p.backend, p.precision, p.options, p.backend.unavailable_reason(device)) for p in plans]


@dataclass(frozen=True)
class CellSpec:
    """Everything one cell's worker processes need (it travels to them pickled)."""

    suite: str  # the suite's `name`: the row's identity, labels and file names
    model: str
    backend: str
    precision: str
    device: str
    threads: int
    batch_size: int
    timing: TimingConfig
    checkpoint: Path
    reference: Path  # fp32 reference logits (N, C, H, W) on the evaluation split, .npy
    options: BackendOptions
    data_dir: Path | None = None
    onnx: Path | None = None  # the user's normalized fp32 ONNX file, for ONNX-based backends
    gradcam: bool = True
    gradcam_layers: tuple[str, ...] = ()
    gradcam_methods: tuple[str, ...] = ("finite-difference", "fake-quant")  # in order of preference
    threshold: float = 0.5
    log_file: Path | None = None  # where the tracebacks of this cell's failing stages are written
    checkpoint_digest: str = ""  # the reference checkpoint's content hash: the float model this cell measured
    split: str = "evaluation"  # the split evaluated and explained; `segbench tune` uses "tuning"
    calibration_draw: tuple[int, int] | None = None  # (size, seed) drawn from the suite's calibration pool
    suite_file: str = ""  # the --suite entry the worker loads the suite from (a name or a TOML path); "": suite
    splits: tuple[tuple[str, int | float | str], ...] = ()  # --split: (split, count) replacing the file's
    profile_calls: int = 0  # calls of the profiled pass after the timing (--profile); 0: no profile
    # an int8 cell slower than the group's fp32 eager is profiled with these calls even without --profile
    # (the decision names where its time goes); 0: never
    slow_int8_profile_calls: int = 0
    profile_dir: Path | None = None  # where the runtime's own profiler files of this cell are kept
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)  # --scenario (bench.run.scenario)
    # --input-sizes: the (height, width) this cell is built and timed at where it is not the suite's own; the
    # artifact is prepared at that size (calibration images drawn at it) and quality is not measured there
    input_size: tuple[int, int] | None = None
    suite_size: tuple[int, int] | None = None  # the suite's own (height, width): the rows' input_height/width

    def calibration_images(self, suite: Any) -> np.ndarray:
        """The normalized calibration images: the suite's calibration split, or a seeded draw of another
        size from its calibration pool (`bench.data.sources.draw_calibration`)."""
        from bench.data.sources import draw_calibration

        if self.calibration_draw is None:
            return suite.normalize(suite.load("calibration").images)
        size, seed = self.calibration_draw
        return suite.normalize(draw_calibration(suite.request, size, seed))

    @property
    def swept_size(self) -> str:
        """The row's `input_size`: "HxW" at a swept size, "" at the suite's own."""
        return "" if self.input_size is None else size_text(self.input_size)

    @property
    def key(self) -> str:
        """The cell's identity, as stored rows are matched (`bench.results.row.cell_id`)."""
        parts = (self.suite, self.model, self.backend, self.precision, self.device, self.batch_size)
        return "/".join(str(v) for v in parts) + (f"/{self.swept_size}" if self.swept_size else "")

    @property
    def label(self) -> str:
        shape = f" b{self.batch_size}" + (f" {self.swept_size}" if self.swept_size else "")
        return f"{self.suite} / {self.model} / {self.backend} {self.precision} {self.device}" + (
            shape if self.swept_size or self.batch_size != 1 else ""
        )

    def group(self) -> tuple[str, str, str, int, str]:
        """Cells whose speeds are compared with each other: same suite, model, device, batch size and input
        size (`bench.results.speedup.GROUP_COLUMNS`)."""
        return (self.suite, self.model, self.device, self.batch_size, self.swept_size)

    def load_suite(self):  # -> bench.data.suite.Suite (imported in the worker, where it is used)
        """The suite, at the swept input size where there is one: its data source draws (or resizes) every
        split's images at that size, as a deployment at that size would feed the model."""
        from dataclasses import replace

        from bench.data.suite import get_suite

        suite = get_suite(self.suite_file or self.suite, data_dir=self.data_dir, splits=dict(self.splits))
        return suite if self.input_size is None else replace(suite, input_size=self.input_size)


def size_text(size: tuple[int, int]) -> str:
    """(height, width) as `--input-sizes` spells it: `512x1024`."""
    return f"{size[0]}x{size[1]}"


def group_cells(cells: list[tuple[CellSpec, BackendPlan]]) -> list[list[tuple[CellSpec, BackendPlan]]]:
    """The cells of each comparison group (`CellSpec.group`) together, groups in first-seen order: what is
    timed interleaved, and the unit a shard or a Ray task takes whole."""
    groups: dict[tuple, list[tuple[CellSpec, BackendPlan]]] = {}
    for spec, plan in cells:
        groups.setdefault(spec.group(), []).append((spec, plan))
    return list(groups.values())
