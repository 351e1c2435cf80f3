"""The rows a tune writes, one record per kind, and what the whole tune concluded.

Each row record names its table's columns, in their order, in `columns()`: what `TuneStore` writes
(sensitivity.parquet, tuning.parquet, peer.parquet, calibration.parquet) and the tune's report reads
(bench/report/tuning.py). Every row ends with the variant's cell as a run's table would have it
(`VariantScore`: identity, status, every stage's columns, the speedup), after the tune's own columns
that say which variant it is; a judged row then adds each budget's margin and whether all held.
tests/bench/tune/test_records.py pins the columns, since a tune folder is read back by --resume and
`segbench report` whichever version wrote it. Rows read back from a table stay mappings: a stored row
is what these records wrote, and the tune only looks columns up in it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backend import AccuracyControlResult, QuantLayer
from bench.results.bounds import Bound
from bench.results.columns import judged
from bench.results.speedup import Speedup
from bench.run.cell import CellOutcome

SQNR_METHOD = "runtime numeric debugger (Backend.layer_sqnr)"


def number(value: Any, default: float) -> float:
    """A stored cell of a row as a float: `default` where it is empty (None or NaN)."""
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def judgement(budgets: tuple[Bound, ...], row: Mapping[str, Any]) -> dict[str, Any]:
    """The columns after a judged row's own: each budget's margin on `row`, then whether every budget holds."""
    return {
        **{f"margin: {budget}": budget.margin(row) for budget in budgets},
        "budgets_met": all(b.holds(row) for b in budgets),
    }


@dataclass(frozen=True)
class VariantScore:
    """A variant's cell, scored (and timed where it was), as a run's table row reads: every tune row ends
    with these columns."""

    row: Mapping[str, Any]  # `Row.record()`: the flat columns, in the run's order

    @classmethod
    def of(cls, outcome: CellOutcome, speedup: Speedup | None = None) -> VariantScore:
        return cls(outcome.row(speedup).record())

    @property
    def status(self) -> str:
        return str(self.row["status"])

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def columns(self) -> dict[str, Any]:
        return dict(self.row)


@dataclass(frozen=True)
class TimedScore:
    """A variant timed in one group with the fp32 reference, then scored: the reference's p50 beside the
    variant's row (whose speedup is that same-run ratio)."""

    fp32_latency_p50_ms: float | None  # None: the reference's timing failed
    score: VariantScore

    def columns(self) -> dict[str, Any]:
        return {"fp32_latency_p50_ms": self.fp32_latency_p50_ms, **self.score.columns()}


@dataclass(frozen=True)
class Gain:
    """One scored column of a layer alone in float: its value and what it gained over the all-int8 start."""

    column: str
    value: Any
    gain: float | None  # None: either side has no value, or the layer's cell failed


@dataclass(frozen=True)
class SensitivityRow:
    """A row of sensitivity.parquet: one layer alone in float on the tuning split, against the all-int8 start."""

    layer: QuantLayer
    status: str
    layer_sqnr_db: float | None
    layer_sqnr_method: str
    gains: tuple[Gain, ...]  # the budgets' columns first, then GAIN_COLUMNS
    model_size_bytes: Any
    float_ops: Any
    int8_ops: Any
    artifact_cached: Any

    @classmethod
    def measured(
        cls,
        layer: QuantLayer,
        score: VariantScore,
        start: Mapping[str, Any],
        columns: list[str],
        sqnr: float | None,
        sqnr_note: str,
    ) -> SensitivityRow:
        """The layer's row from its cell's `score` and the all-int8 `start` row; `sqnr_note` says why there
        is no SQNR (empty: the runtime's numeric debugger measured it)."""
        gains = []
        for column in columns:
            value, base = score.row.get(column), start.get(column)
            gain = None if value is None or base is None or not score.ok else float(value) - float(base)
            gains.append(Gain(column, value, gain))
        return cls(
            layer=layer,
            status=score.status,
            layer_sqnr_db=sqnr,
            layer_sqnr_method=sqnr_note or SQNR_METHOD,
            gains=tuple(gains),
            model_size_bytes=score.row.get("model_size_bytes"),
            float_ops=score.row.get("float_ops"),
            int8_ops=score.row.get("int8_ops"),
            artifact_cached=score.row.get("artifact_cached"),
        )

    def gain(self, column: str) -> float | None:
        return next((g.gain for g in self.gains if g.column == column), None)

    def columns(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "layer": self.layer.name,
            "module_path": self.layer.name,
            "op_type": self.layer.op_type,
            "node": self.layer.node,
            "status": self.status,
            "layer_sqnr_db": self.layer_sqnr_db,
            "layer_sqnr_method": self.layer_sqnr_method,
        }
        for gain in self.gains:
            row |= {gain.column: gain.value, f"{gain.column}_gain": gain.gain}
        return row | {
            "model_size_bytes": self.model_size_bytes,
            "float_ops": self.float_ops,
            "int8_ops": self.int8_ops,
            "artifact_cached": self.artifact_cached,
        }


@dataclass(frozen=True)
class SensitivitySummary:
    """sensitivity.json: does the cheap SQNR proxy rank the layers as their measured gains do?"""

    spearman_sqnr_vs_metric: float | None
    metric: str
    layers: int  # quantizable layers listed
    measured: int  # of them, measured without error
    sqnr_note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "spearman_sqnr_vs_metric": self.spearman_sqnr_vs_metric,
            "metric": self.metric,
            "layers": self.layers,
            "measured": self.measured,
            "sqnr_note": self.sqnr_note,
        }


@dataclass(frozen=True)
class RankedLayer:
    """A measured layer as the fallback takes it: how much keeping it alone in float helped the first
    budget's metric, and its SQNR (the proxy's tie-break)."""

    layer: str
    improvement: float | None  # the gain, negated where lower is better; None where there is none
    sqnr_db: float | None

    @classmethod
    def of(cls, row: Mapping[str, Any], metric: str) -> RankedLayer:
        """From a stored sensitivity row (bench/results/columns.py says which way `metric` is better)."""
        gain = number(row.get(f"{metric}_gain"), math.nan)
        declared = judged(metric)
        lower = declared is not None and declared.better == "lower"
        improvement = None if math.isnan(gain) else -gain if lower else gain
        sqnr = number(row.get("layer_sqnr_db"), math.nan)
        return cls(str(row["layer"]), improvement, None if math.isnan(sqnr) else sqnr)

    @property
    def helped(self) -> bool:
        return self.improvement is not None and self.improvement > 0

    def rank(self) -> tuple[float, float]:
        """Sort key: the most helpful first, then the lowest SQNR (the proxy's suspects)."""
        improvement = -math.inf if self.improvement is None else self.improvement
        return -improvement, math.inf if self.sqnr_db is None else self.sqnr_db


START, TIMED, CONFIRMED = "tuning-untimed", "tuning", "evaluation"  # the splits of tuning.parquet


@dataclass(frozen=True)
class StepRow:
    """A row of tuning.parquet: the all-int8 start scored untimed (the sensitivity's base), a greedy step
    timed beside the fp32 reference, or a step confirmed on the evaluation split."""

    split: str  # START, TIMED or CONFIRMED
    step: int
    float_layers: tuple[str, ...]
    score: VariantScore | TimedScore  # timed: a greedy step
    budgets: tuple[Bound, ...] | None  # judged on them (None: the untimed start is not judged)

    @classmethod
    def start(cls, score: VariantScore) -> StepRow:
        return cls(START, 0, (), score, None)

    @classmethod
    def timed(cls, step: int, layers: tuple[str, ...], score: TimedScore, budgets: tuple[Bound, ...]) -> StepRow:
        return cls(TIMED, step, layers, score, budgets)

    @classmethod
    def confirmed(cls, step: int, layers: tuple[str, ...], score: VariantScore, budgets: tuple[Bound, ...]) -> StepRow:
        return cls(CONFIRMED, step, layers, score, budgets)

    def columns(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "split": self.split,
            "step": self.step,
            "float_layers": ",".join(self.float_layers),
            "n_float_layers": len(self.float_layers),
        }
        if isinstance(self.score, TimedScore):  # a greedy step: the layer it added
            row["added_layer"] = self.float_layers[-1] if self.float_layers else ""
        row |= self.score.columns()
        return row if self.budgets is None else row | judgement(self.budgets, row)


@dataclass(frozen=True)
class PeerRow:
    """A row of peer.parquet: the model the runtime's own accuracy control returned, timed beside the fp32
    reference and scored on the tuning split (with what the runtime said of it), or confirmed on evaluation."""

    split: str  # TIMED or CONFIRMED
    method: str | None  # the runtime's tool, e.g. nncf.quantize_with_accuracy_control
    budget: Bound  # the one budget it was given
    float_layers: tuple[str, ...]
    score: VariantScore | TimedScore
    budgets: tuple[Bound, ...]  # every budget of the tune, judged as a step is
    found: AccuracyControlResult | None = None  # the tuning split's row: what the runtime chose and measured

    @classmethod
    def timed(
        cls, found: AccuracyControlResult, budget: Bound, score: TimedScore, budgets: tuple[Bound, ...]
    ) -> PeerRow:
        return cls(TIMED, found.method, budget, found.float_layers, score, budgets, found)

    @classmethod
    def confirmed(
        cls, method: str | None, budget: Bound, layers: tuple[str, ...], score: VariantScore, budgets: tuple[Bound, ...]
    ) -> PeerRow:
        return cls(CONFIRMED, method, budget, layers, score, budgets)

    def columns(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "split": self.split,
            "method": self.method,
            "budget": str(self.budget),
            "float_layers": ",".join(self.float_layers),
            "n_float_layers": len(self.float_layers),
        }
        if (found := self.found) is not None:
            row |= {
                "peer_options": ",".join(f"{k}={v}" for k, v in found.options.items()),
                "own_float_score": found.float_score,
                "own_quantized_score": found.quantized_score,
                "own_drop": found.float_score - found.quantized_score,
                "own_seconds": found.seconds,
                "own_notes": found.notes,
            }
        row |= self.score.columns()
        return row | judgement(self.budgets, row)


@dataclass(frozen=True)
class PeerFailure:
    """The row of peer.parquet when the runtime's accuracy control returned no model."""

    budget: Bound
    message: str

    def columns(self) -> dict[str, Any]:
        return {"split": TIMED, "budget": str(self.budget), "status": f"error: {self.message}"}


@dataclass(frozen=True)
class CalibrationRow:
    """A row of calibration.parquet: one calibration draw (method, size, seed) scored on the tuning split."""

    method: str  # the backend's calibration option value; "default" where the study left it as it is
    size: int
    seed: int
    score: VariantScore

    def columns(self) -> dict[str, Any]:
        return {"method": self.method, "size": self.size, "seed": self.seed, **self.score.columns()}


@dataclass(frozen=True)
class TuneOutcome:
    """What a tune concluded, for the command to print and exit with."""

    folder: Path
    met: bool  # a configuration met every budget (always True for a calibration-only tune)
    option_line: str | None  # `--option B.float_layers=...` of the chosen configuration
    message: str  # what was chosen, or which budget failed and by how much
    errors: tuple[str, ...] = ()  # variants (layers, steps, draws) that ended in error: the tune exits 1
    # the chosen configuration is slower than fp32 eager (its speedup and interval): quantizing does not
    # pay; the tune exits 1 unless --allow-slower
    slower: str = ""
    chosen: dict[str, Any] | None = None  # the chosen step's tuning row (a cross-backend tune decides on it)
