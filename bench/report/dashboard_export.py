"""A run folder for the dashboards that chart more than latency: Bencher's metric format (`--format bmf`)
and github-action-benchmark's custom JSON (`--format github-action-benchmark`, two files: one for its
`customSmallerIsBetter` tool, one for `customBiggerIsBetter`).

Why: `--format pytest-benchmark` carries size, memory and the drifts in `extra_info`, which
github-action-benchmark's pytest extractor never reads (it charts `stats.ops` alone), so a night that
lost 0.05 mIoU or doubled the backend's memory charted nothing. These two formats take one number per
measure, with its direction (github-action-benchmark: the file it is in) and its interval (Bencher).

The formats, as read for this module:

- Bencher Metric Format, https://bencher.dev/docs/reference/bencher-metric-format and its JSON schema
  https://bencher.dev/bmf.json (draft-07): an object of benchmarks (any name), each an object of
  measures (a slug or a name, at most 64 characters), each `{"value": number}` with optional numbers
  `lower_value` and `upper_value`. tests/bench/report/test_dashboard_export.py validates against it.
  https://bencher.dev/docs/how-to/track-custom-benchmarks: `bencher run --adapter json --file bmf.json`.
- github-action-benchmark (benchmark-action/github-action-benchmark): src/extract.ts, `BenchmarkResult`
  `{name: string, value: number, range?: string, unit: string, extra?: string}`; its
  `extractCustomBenchmarkResult` reads a JSON list and keeps exactly those five fields of each item.
  src/write.ts `findAlerts`: an entry is compared with the entry of the same name in the previous
  commit's results, by the ratio current/previous (previous/current for a bigger-is-better tool); a
  name the previous results lack is skipped. src/extractRangeInfo.ts: a range written `± x` or `+- x`
  is rescaled with the unit; any other text is shown as written.

What is written, per `ok` cell, named as the pytest-benchmark export names it
(`suite/model/backend-precision/device/bN`): `latency_p50_ms`, `latency_p99_ms`, `speedup_vs_fp32`,
`model_size_bytes`, `backend_rss_mib`, `peak_device_mib` (the device's memory, GPU rows) and every
quality drift column the run has: a column bench/results/columns.py declares by its exact name, judged,
ending in `_drift` (the scalar drifts, `mean_bf_score_drift`, `min_class_iou_drift`). The per-class
families (`iou_<class>_drift`, ...) are left out: dozens of series per cell, and `min_class_iou_drift`
already says how the worst class moved. Direction and unit are each column's declaration; the interval
is the row's `<column>_ci_low/_ci_high` (95%) where it has them. A NaN or missing number leaves that
measure out (NaN never reaches a dashboard). BMF measures are the column names in kebab case
(`miou-drift`); github-action-benchmark names are `<cell>/<column>`.

Noisy rows: a row whose `timing_quality` is `noisy: ...` keeps its size, memory and drift measures and
loses its timing ones (declared kind latency or speed: `latency_p50_ms`, `latency_p99_ms`,
`speedup_vs_fp32`), the rule compare and the decision apply. They are left out rather than marked
because neither tool has a mark that spares only them: Bencher's `-bencher-ignore` suffix silences a
whole benchmark (its drifts too) and needs a kebab-case name, github-action-benchmark has no mark at
all. Left out, the chart shows a gap and nothing alerts: github-action-benchmark skips a name the
previous results lack (so the quiet night after a noisy one is not compared either), Bencher has no
point to test. Cells that are not `ok` (error, unavailable) are left out whole. Both are returned to
the caller, which names them.

Drifts in github-action-benchmark: a drift is the score minus the fp32 reference's (about 0, negative for
a loss), and the action's ratio cannot judge a number around or below zero: from -0.01 to -0.05 it
reads 0.2 (no alert), and the way back 5 (an alert on an improvement). Its bigger-is-better file carries
`1 + drift` instead (unit `1 + drift`, the fp32 reference at 1): the same chart, shifted, whose ratio
reads the right way (from 0.99 to 0.95: 1.04x worse); the drift itself is in `extra`. BMF carries the
drift as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UsageError
from bench.report.pytest_benchmark import cell_name
from bench.results.columns import Better, judged
from bench.results.files import read_results

FORMATS = ("bmf", "github-action-benchmark")
# timing, speed, size and memory, in this order; the drifts follow, from the columns the run has
FIXED_COLUMNS = (
    "latency_p50_ms",
    "latency_p99_ms",
    "speedup_vs_fp32",
    "model_size_bytes",
    "backend_rss_mib",
    "peak_device_mib",
)
INTERVAL = "95% interval"  # what `<column>_ci_low/_ci_high` are (bench/decide/budgets.py)
DRIFT_UNIT = "1 + drift"  # github-action-benchmark's drift entries (see the module's docstring)
TOOLS = {"lower": "customSmallerIsBetter", "higher": "customBiggerIsBetter"}


@dataclass(frozen=True)
class Measure:
    """One number of one cell, with its declaration's direction and unit and its interval if any."""

    column: str
    value: float
    better: Better
    unit: str
    low: float | None = None
    high: float | None = None
    timing: bool = False  # latency or speed: left out of a noisy row

    @property
    def drift(self) -> bool:
        return self.column.endswith("_drift")


@dataclass(frozen=True)
class Cell:
    name: str  # suite/model/backend-precision/device/bN
    timing_quality: str
    measures: tuple[Measure, ...]


def drift_columns(names: Iterable[str]) -> list[str]:
    """The quality drift columns among `names`: declared by their exact name, judged, `*_drift`."""
    found = []
    for name in names:
        declared = judged(str(name))
        if declared is not None and declared.name == name and str(name).endswith("_drift"):
            found.append(str(name))
    return found


def _number(row: pd.Series, name: str) -> float | None:
    """The row's finite number in `name`, or None (missing, NaN, infinite, not a number)."""
    value = row.get(name)
    if value is None or isinstance(value, (bool, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _measure(row: pd.Series, name: str) -> Measure | None:
    declared = judged(name)
    value = _number(row, name)
    if declared is None or declared.better is None or value is None:
        return None
    low, high = _number(row, f"{name}_ci_low"), _number(row, f"{name}_ci_high")
    return Measure(name, value, declared.better, declared.unit, low, high, declared.timing)


def read_cells(run_dir: Path) -> tuple[list[Cell], list[str]]:
    """The `ok` cells of a run folder with their measures, and what was left out (cell: why)."""
    results = read_results(run_dir)
    names = [name for name in FIXED_COLUMNS if name in results.columns] + drift_columns(results.columns)
    cells, left_out = [], []
    for _, row in results.iterrows():
        name, status = cell_name(row), str(row["status"])
        if status != "ok":
            left_out.append(f"{name}: {status}")
            continue
        quality = row.get("timing_quality")
        timing_quality = quality if isinstance(quality, str) else ""
        noisy = timing_quality.startswith("noisy")
        measures = [m for m in (_measure(row, n) for n in names) if m is not None]
        dropped = [m.column for m in measures if noisy and m.timing]
        if dropped:
            left_out.append(f"{name}: {', '.join(dropped)} (timing {timing_quality})")
        kept = tuple(m for m in measures if m.column not in dropped)
        cells.append(Cell(name, timing_quality, kept))
    return cells, left_out


def measure_slug(name: str) -> str:
    """A column's Bencher measure slug: lower case, words joined by `-` (at most 64 characters)."""
    return name.lower().replace("_", "-")[:64]


def to_bmf(cells: Iterable[Cell]) -> dict[str, dict[str, dict[str, float]]]:
    """Bencher Metric Format: {benchmark: {measure slug: {value, lower_value?, upper_value?}}}."""
    document: dict[str, dict[str, dict[str, float]]] = {}
    for cell in cells:
        metrics: dict[str, dict[str, float]] = {}
        for m in cell.measures:
            metric = {"value": m.value}
            if m.low is not None:
                metric["lower_value"] = m.low
            if m.high is not None:
                metric["upper_value"] = m.high
            metrics[measure_slug(m.column)] = metric
        if metrics:
            document[cell.name] = metrics
    return document


def _interval_text(low: float, high: float) -> str:
    """An asymmetric interval as github-action-benchmark's `range` (never `± x`: the action would rescale it)."""
    return f"{INTERVAL} [{low:.6g}, {high:.6g}]"


def github_action_benchmark_entry(cell: Cell, m: Measure) -> dict[str, Any]:
    """One `BenchmarkResult`: name, unit, value, and range and extra where there is something to say."""
    shift = 1.0 if m.drift else 0.0  # 1 + drift: see the module's docstring
    entry: dict[str, Any] = {
        "name": f"{cell.name}/{m.column}",
        "unit": DRIFT_UNIT if m.drift else m.unit,
        "value": shift + m.value,
    }
    if m.low is not None and m.high is not None:
        entry["range"] = _interval_text(shift + m.low, shift + m.high)
    extra = [f"{m.column}: {m.value:.6g}"]
    if m.drift and m.low is not None and m.high is not None:
        extra[0] += f" ({_interval_text(m.low, m.high)})"
    if m.timing:
        extra.append(f"timing_quality: {cell.timing_quality or 'not recorded'}")
    entry["extra"] = "\n".join(extra)
    return entry


def to_github_action_benchmark(cells: Iterable[Cell]) -> dict[Better, list[dict[str, Any]]]:
    """github-action-benchmark's custom JSON, one list per direction (one tool run reads one file)."""
    by_direction: dict[Better, list[dict[str, Any]]] = {"lower": [], "higher": []}
    for cell in cells:
        for m in cell.measures:
            by_direction[m.better].append(github_action_benchmark_entry(cell, m))
    return by_direction


def bigger_path(out: Path) -> Path:
    """Where `--format github-action-benchmark --out F` puts the bigger-is-better file: beside F, with
    `.bigger` before F's suffix (bench.json -> bench.bigger.json); F itself is the smaller-is-better one."""
    return out.with_name(f"{out.stem}.bigger{out.suffix}")


def export_files(run_dir: Path, export_format: str, out: Path) -> tuple[list[tuple[Path, Any, str]], list[str]]:
    """What `segbench export RUN --format <export_format> --out <out>` writes: (file, JSON document, what
    it holds) for each file, and the cells or measures left out (why)."""
    if export_format not in FORMATS:
        raise UsageError(f"--format {export_format}: not a dashboard format; expected one of {', '.join(FORMATS)}")
    cells, left_out = read_cells(run_dir)
    if export_format == "bmf":
        document = to_bmf(cells)
        count = sum(len(measures) for measures in document.values())
        return [(out, document, f"{len(document)} benchmark(s), {count} metric(s) in Bencher Metric Format")], left_out
    lists = to_github_action_benchmark(cells)
    smaller, bigger = lists["lower"], lists["higher"]
    return [
        (out, smaller, f"{len(smaller)} result(s), smaller is better (tool: {TOOLS['lower']})"),
        (bigger_path(out), bigger, f"{len(bigger)} result(s), bigger is better (tool: {TOOLS['higher']})"),
    ], left_out
