"""Stand-ins for the cells a tune measures, so that a test sees the rows a tune writes (and which variants
it measures) without preparing, timing or scoring a model (tests/test_tune.py runs real tunes).

A stand-in cell's row has the run's identity and status columns, a few of each stage's, and the
speedup's: `CELL_COLUMNS` of an ok cell. Its scores rise with each layer in float, by the layer's
`HELP` (a layer named `bad` fails), so every layer has a gain of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.backend import AccuracyControlResult, Backend, QuantLayer
from bench.results.speedup import Speedup
from bench.tune import calibration, fallback, peer, sensitivity, variants

HELP = {"enc.0": 0.25, "enc.1": -1.5, "dec.0": 0.75}  # how much each layer alone in float helps (bad: fails)
LAYERS = [QuantLayer(name, "Conv", f"node{i}") for i, name in enumerate(["enc.0", "bad", "enc.1", "dec.0"])]
SQNR = {"enc.0": 12.0, "bad": 30.0, "dec.0": 8.5, "enc.1": 15.0}
IDENTITY = ["suite", "model", "backend", "precision", "device", "status", "batch_size", "threads", "checkpoint_digest"]
TIMING = ["latency_p50_ms", "timing_quality"]  # only in the row of a timed cell
SCORES = [
    "model_size_bytes",
    "int8_ops",
    "float_ops",
    "artifact_cached",
    "evaluation_status",
    "miou",
    "dice",
    "mean_bf_score",
    "pixel_agreement",
    "miou_drift",
    "dice_drift",
    "min_class_iou_drift",
    "sqnr_db",
]
SPEEDUP = ["speedup_vs_fp32", "speedup_method"]
PAIRED = ["speedup_vs_fp32_ci_low", "speedup_vs_fp32_ci_high", "speedup_ci_method"]  # a paired speedup's interval
TAIL = ["duration_s", "notes", "options"]
CELL_COLUMNS = [*IDENTITY, *SCORES, *SPEEDUP, *TAIL]  # an ok cell scored without timing
TIMED_CELL_COLUMNS = [*IDENTITY, *TIMING, *SCORES, *SPEEDUP, *PAIRED, *TAIL]  # an ok cell timed beside fp32


@dataclass(frozen=True)
class Spec:
    key: str
    layers: tuple[str, ...] = ()
    extra: str = ""  # the peer's options
    draw: tuple[int, int] | None = None
    backend: str = "b-int8"
    model: str = "m"


@dataclass(frozen=True)
class Measured:
    p50: float

    @property
    def stats(self) -> Any:
        return type("Stats", (), {"p50_ms": self.p50})()

    def round_p50_ms(self) -> dict[int, float]:
        return {0: self.p50, 1: self.p50 * 1.01, 2: self.p50 * 0.99, 3: self.p50}


class _Row:
    def __init__(self, columns: dict[str, Any]) -> None:
        self.columns = columns

    def record(self) -> dict[str, Any]:
        return dict(self.columns)


@dataclass
class Outcome:
    spec: Spec
    timed: bool = False

    @property
    def status(self) -> str:
        return "error: worker died" if "bad" in self.spec.layers or self.spec.extra == "bad" else "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def measurement(self) -> Measured | None:
        if not self.timed or not (self.ok or self.spec.key == "reference"):
            return None
        return Measured(20.0 if self.spec.key == "reference" else 10.0 + len(self.spec.layers))

    def row(self, speedup: Speedup | None = None) -> _Row:
        columns: dict[str, Any] = {
            "suite": "s",
            "model": "m",
            "backend": "b",
            "precision": "int8",
            "device": "cpu",
            "status": self.status,
            "batch_size": 1,
            "threads": 1,
            "checkpoint_digest": "abc",
        }
        if self.ok:
            helped = (
                len(self.spec.layers)
                + (0.5 if self.spec.extra else 0)
                + sum(HELP.get(x, 0.0) for x in self.spec.layers)
            )
            if (measured := self.measurement) is not None:
                columns |= {"latency_p50_ms": measured.p50, "timing_quality": "ok"}
            columns |= {
                "model_size_bytes": 1000 + 10 * len(self.spec.layers),
                "int8_ops": 40 - len(self.spec.layers),
                "float_ops": 4 + len(self.spec.layers),
                "artifact_cached": False,
                "evaluation_status": "ok",
                "miou": 0.8 + 0.01 * helped,
                "dice": 0.85 + 0.005 * helped,
                "mean_bf_score": 0.7 + 0.002 * helped,
                "pixel_agreement": 0.99,
                "miou_drift": -0.02 + 0.004 * helped,
                "dice_drift": -0.015 + 0.003 * helped,
                "min_class_iou_drift": -0.03 + 0.005 * helped,
                "sqnr_db": 20.0 + helped,
            }
        columns |= speedup.columns() if speedup is not None else {"speedup_vs_fp32": None, "speedup_method": None}
        return _Row(columns | {"duration_s": 1.5, "notes": "", "options": "float_layers=" + ",".join(self.spec.layers)})


class RuntimeWithAccuracyControl(Backend):
    def accuracy_control(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a tune asks it in a worker")


RuntimeWithAccuracyControl.__abstractmethods__ = frozenset()  # only its class is looked at


class RuntimeWithout:
    accuracy_control = Backend.accuracy_control


@dataclass(frozen=True)
class Plan:
    backend: Any
    name: str = "b-int8"


@dataclass(frozen=True)
class StandInVariants:
    """`bench.tune.variants.Variants` with specs that say which variant they are."""

    folder: Path
    plan: Plan = field(default_factory=lambda: Plan(RuntimeWithAccuracyControl()))
    reference_plan: Plan = field(default_factory=lambda: Plan(RuntimeWithout(), "torch-eager"))
    tuned: Spec = Spec("tuned")
    reference: Spec = Spec("reference")

    def with_layers(self, layers: tuple[str, ...], split: str = "tuning") -> Spec:
        return Spec(f"{split}-{','.join(layers)}", tuple(layers))

    def with_options(self, extra: dict[str, str], label: str, split: str = "tuning") -> Spec:
        return Spec(f"{split}-{label}", ("x.0", "x.1"), extra=",".join(f"{k}={v}" for k, v in extra.items()))

    def with_calibration(self, method: str | None, size: int, seed: int) -> Spec:
        layers = ("bad",) if (method, size, seed) == ("entropy", 8, 1) else ()  # one draw fails
        return Spec(f"calibration-{method}-{size}-{seed}", layers, draw=(size, seed))


FOUND = AccuracyControlResult(
    "nncf.quantize_with_accuracy_control", ("x.0", "x.1"), 0.9, 0.895, 12.5, {"ir": "/p/m.xml", "preset": "mixed"}
)


@dataclass
class Cells:
    """What the stand-ins were asked: every spec scored or timed, every worker call."""

    scored: list[Spec] = field(default_factory=list)
    timed: list[Spec] = field(default_factory=list)
    worker: list[str] = field(default_factory=list)
    sqnr: bool = True  # the runtime has a numeric debugger
    peer: bool = True  # its accuracy control returns a model
    layers: list[QuantLayer] = field(default_factory=lambda: list(LAYERS))


class _Kernel:
    def __init__(self, *args: Any) -> None:
        pass

    def measure(self) -> float:
        return 1.0


def install(monkeypatch: pytest.MonkeyPatch) -> Cells:
    """Every cell and worker call of a tune answered by the stand-ins above."""
    cells = Cells()

    def in_worker(function: Any, args: tuple[Any, ...], timeout: float, on_stage: Any, log_file: Path) -> Any:
        cells.worker.append(function.__name__)
        if function.__name__ == "quantizable_layers":
            return ("ok", cells.layers) if cells.layers else ("error", "no layers")
        if function.__name__ == "layer_sqnr":
            return ("ok", dict(SQNR)) if cells.sqnr else ("error", "no debugger here")
        return ("ok", FOUND) if cells.peer else ("error", "nncf failed")

    def evaluate(spec: Spec, plan: Any, timeout: float, on_stage: Any) -> Outcome:
        cells.scored.append(spec)
        return Outcome(spec)

    def measure(pairs: list[tuple[Spec, Any]], timeout: float, kernel: Any, log: Any, labels: Any) -> list[Outcome]:
        cells.timed += [spec for spec, _ in pairs]
        return [Outcome(spec, timed=True) for spec, _ in pairs]

    for module in (variants, sensitivity, fallback, peer, calibration):
        for name, value in (
            ("in_worker", in_worker),
            ("evaluate_cell", evaluate),
            ("explain_cell", lambda outcome, on_stage: outcome),
            ("measure_cells", measure),
            ("ReferenceKernel", _Kernel),
            ("reference_kernel_record", lambda threads: None),
        ):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)
    return cells
