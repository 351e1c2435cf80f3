"""Nightly history: every run folder under a results root, as one series per cell and metric, with the
change points a change-point library finds in it.

A pairwise test against one baseline (`segbench compare`) pages on a noisy night and misses a slow
drift; the practice of long-running benchmark suites (MongoDB's e-divisive means, asv's step
detection) is to segment the whole history instead. segbench uses PELT from `ruptures` with the
least-squares cost: it is exact for a given penalty and works from the second night on, where
e-divisive's permutation test cannot call anything significant with fewer than about five runs on
each side of a change (and `signal-processing-algorithms` ships no wheel). The penalty and the smallest
change worth reporting come from the history itself:

- latency is segmented in log space (a change is a ratio), and a change counts only when larger than
  `LATENCY_SPREAD_FACTOR` times the run-to-run spread this machine's history shows (pooled over all its
  cells, a robust estimate from successive runs, so one real step in one cell does not hide itself);
  points from rows timed on a busy machine (`timing_quality` noisy) stay in the series (on a shared
  runner most rows may be noisy), but a latency change is *confirmed* only when at least one quietly
  timed point is at the new level; an unconfirmed change is listed and never makes the exit code 1 (as
  TorchBench files a regression only after it is confirmed);
- every column declared with a between-runs threshold (bench/results/columns.py: quality, drift,
  agreement, boundary, per-class, SQNR, Grad-CAM) is deterministic for a given model and code, so a
  change counts when it moves the value by at least that threshold (the one `segbench compare` uses;
  `quality_threshold`, when given, replaces every score column's); Grad-CAM points count only for the
  newest run's method and valid maps (a change of method is not a change of the model).

Series are keyed by the machine fingerprint (CPU, cores, GPU, threads: `env.json`) and the cell's
identity with its thread count, so two machines' nights never mix.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.environment import machine_fingerprint
from bench.errors import UsageError
from bench.results.columns import between_runs, column
from bench.results.files import read_json, read_table
from bench.results.row import IDENTITY_COLUMNS

LATENCY = "latency_p50_ms"
LATENCY_SPREAD_FACTOR = 3.0  # a latency change must exceed 3x the history's run-to-run spread (log scale)
DRIFT_GAP = 2  # same-direction changes this close (in runs) are one drift, not separate steps
MIN_LATENCY_SPREAD = 0.01  # floor of that spread (1%): a history of identical numbers is not infinitely precise
CELL_COLUMNS = (*IDENTITY_COLUMNS, "threads")
CHANGE_POINT_METHOD = "PELT (ruptures, least-squares cost)"


@dataclass(frozen=True)
class HistoryRun:
    """One run folder: where, when, which commit, on which machine."""

    path: Path
    date: dt.datetime
    commit: str | None
    machine: tuple
    machine_label: str
    results: pd.DataFrame

    @property
    def short_commit(self) -> str:
        return (self.commit or "unknown")[:10]


@dataclass(frozen=True)
class Series:
    """One metric of one cell on one machine, in run order (runs where the cell had no valid value are
    absent: `runs` holds the indices into `History.runs`)."""

    machine_label: str
    cell: tuple[str, ...]  # CELL_COLUMNS values
    metric: str
    runs: tuple[int, ...]
    values: tuple[float, ...]
    left_out: int = 0  # points dropped: invalid or other-method Grad-CAM maps, non-finite values
    noisy: tuple[bool, ...] = ()  # per point: the latency was timed on a busy machine

    @property
    def label(self) -> str:
        suite, model, backend, precision, device, batch, size, threads = self.cell
        return f"{suite}/{model}/{backend}:{precision} {device} b{batch}{f' {size}' if size else ''} t{threads}"


@dataclass(frozen=True)
class Change:
    """A change point: the series' level before and after, and the first run at the new level."""

    series: Series
    position: int  # index into series.runs of the first point after the change
    before: float  # mean of the segment before
    after: float  # mean of the segment after
    threshold: float  # the smallest change this metric reports (same unit as the change; latency: ratio)
    kind: str = "step"  # "drift": one of several changes in the same direction, at most DRIFT_GAP runs apart
    confirmed: bool = True  # latency: some quietly timed point is at the new level (else: noisy evidence only)

    @property
    def first_run(self) -> int:
        return self.series.runs[self.position]

    @property
    def previous_run(self) -> int:
        return self.series.runs[self.position - 1]

    @property
    def worse(self) -> bool:
        declared = column(self.series.metric)
        if declared is not None and declared.better == "lower":
            return self.after > self.before
        return self.after < self.before

    def describe(self) -> str:
        if self.series.metric == LATENCY:
            return f"{self.before:.3f} -> {self.after:.3f} ms (x{self.after / self.before:.2f})"
        return f"{self.before:.4f} -> {self.after:.4f} ({self.after - self.before:+.4f})"


@dataclass(frozen=True)
class History:
    root: Path
    runs: tuple[HistoryRun, ...]
    series: tuple[Series, ...]
    changes: tuple[Change, ...]  # newest first
    latency_spread: dict[str, float]  # machine label -> run-to-run spread (log scale, 1 sigma)
    quality_threshold: float | None  # --quality-threshold: every score column's; None: each column's declared one

    def newest_runs(self, machine_label: str, n: int) -> set[int]:
        """Indices of the newest `n` runs made on one machine."""
        mine = [i for i, run in enumerate(self.runs) if run.machine_label == machine_label]
        return set(mine[-n:])

    def recent_changes(self, n: int) -> list[Change]:
        """Changes whose first run is among the newest `n` runs of its machine (exit 1 when any)."""
        return [c for c in self.changes if c.confirmed and c.first_run in self.newest_runs(c.series.machine_label, n)]


def _parse_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        date = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return date if date.tzinfo else date.replace(tzinfo=dt.UTC)


def parse_since(text: str) -> dt.datetime:
    """`--since`: an ISO date or date and time (UTC unless it says otherwise)."""
    date = _parse_date(text)
    if date is None:
        raise UsageError(f"--since {text!r} is not a date; expected YYYY-MM-DD or an ISO date and time")
    return date


def _machine_label(env: dict[str, Any]) -> str:
    cpu = env.get("cpu_model") or "unknown CPU"
    gpu = env.get("gpu")
    return f"{cpu}{' + ' + gpu if gpu else ''}, {env.get('logical_cores')} cores, {env.get('threads')} threads"


def _run_folders(root: Path) -> list[Path]:
    """Every folder under `root` holding a results table; symlinks (results/latest) are not followed,
    so no run is counted twice."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
        if "results.parquet" in files:
            found.append(Path(folder))
    return found


def find_runs(root: Path, since: dt.datetime | None = None) -> list[HistoryRun]:
    """The run folders under `root` in date order (env.json's date; the results file's time when a folder
    has none), from `since` on."""
    if not root.is_dir():
        raise UsageError(f"results root '{root}' does not exist or is not a folder")
    runs = []
    for folder in _run_folders(root):
        env_path = folder / "env.json"
        env = read_json(env_path) if env_path.is_file() else {}
        results = read_table(folder / "results.parquet")
        if not set(CELL_COLUMNS) <= set(results.columns) or "status" not in results:
            continue  # not a benchmark run's table
        date = _parse_date(env.get("date")) or dt.datetime.fromtimestamp(
            (folder / "results.parquet").stat().st_mtime, dt.UTC
        )
        if since is not None and date < since:
            continue
        runs.append(
            HistoryRun(folder, date, env.get("git_commit"), machine_fingerprint(env), _machine_label(env), results)
        )
    runs = _without_copies(runs)
    if not runs:
        after = f" dated {since.date()} or later" if since is not None else ""
        raise UsageError(f"'{root}' holds no segbench run folders{after} (folders with results.parquet and env.json)")
    return sorted(runs, key=lambda r: (r.date, r.path.name))


def _without_copies(runs: list[HistoryRun]) -> list[HistoryRun]:
    """One run per (date, commit, machine): a baseline copied next to the nightly folders (`cp -rL
    results/latest results/baseline`) is the same run, and must not count as a second night."""
    seen: dict[tuple, HistoryRun] = {}
    for run in sorted(runs, key=lambda r: (r.path.is_symlink(), str(r.path))):
        seen.setdefault((run.date, run.commit, run.machine), run)
    return list(seen.values())


def metric_columns(results: Iterable[pd.DataFrame]) -> list[str]:
    """Latency p50 and every column declared with a between-runs threshold: quality, drift, agreement,
    boundary, per-class, SQNR and the Grad-CAM divergences."""
    columns: dict[str, None] = {LATENCY: None}
    for table in results:
        columns.update(dict.fromkeys(between_runs(table.columns)))
    return list(columns)


def _valid(row: pd.Series, metric: str, gradcam_method: str | None) -> bool:
    value = row.get(metric)
    if value is None or not isinstance(value, (int, float, np.number)) or not math.isfinite(float(value)):
        return False
    if metric == LATENCY:
        return float(value) > 0
    if metric.startswith("gradcam_"):
        status_ok = not str(row.get("gradcam_status", "ok")).startswith("invalid")
        return status_ok and str(row.get("gradcam_method")) == str(gradcam_method)
    return True


def build_series(runs: list[HistoryRun]) -> list[Series]:
    """One series per (machine, cell, metric) that has a value in any run (change points need two)."""
    metrics = metric_columns(run.results for run in runs)
    points: dict[tuple, list[tuple[int, pd.Series]]] = {}
    labels: dict[tuple, str] = {}
    for i, run in enumerate(runs):
        for _, row in run.results[run.results["status"] == "ok"].iterrows():
            key = (run.machine, tuple(str(row[c]) for c in CELL_COLUMNS))
            points.setdefault(key, []).append((i, row))
            labels[key] = run.machine_label
    series = []
    for key, rows in points.items():
        newest_method = rows[-1][1].get("gradcam_method")
        for metric in metrics:
            kept = [(i, row) for i, row in rows if _valid(row, metric, newest_method)]
            present = sum(1 for _, row in rows if metric in row.index and pd.notna(row.get(metric)))
            if kept or present:  # a series of one point, or of left-out points only, still shows what was dropped
                series.append(
                    Series(
                        labels[key],
                        key[1],
                        metric,
                        tuple(i for i, _ in kept),
                        tuple(_compared(metric, float(row[metric])) for _, row in kept),
                        left_out=present - len(kept),
                        noisy=tuple(
                            metric == LATENCY and str(row.get("timing_quality", "")).startswith("noisy")
                            for _, row in kept
                        ),
                    )
                )
    return series


def _compared(metric: str, value: float) -> float:
    """A value as runs are compared on it (bench/results/columns.py: SQNR above its ceiling counts as it)."""
    declared = column(metric)
    return declared.level(value) if declared is not None else value


def latency_spread(series: list[Series]) -> dict[str, float]:
    """Per machine, the run-to-run spread of log latency (one sigma): 1.4826 x the median absolute
    successive difference over all its cells, divided by sqrt(2) (a difference has twice the variance)."""
    diffs: dict[str, list[float]] = {}
    for s in series:
        if s.metric == LATENCY:
            diffs.setdefault(s.machine_label, []).extend(np.abs(np.diff(np.log(s.values))).tolist())
    return {
        machine: max(MIN_LATENCY_SPREAD, 1.4826 * float(np.median(d)) / math.sqrt(2)) for machine, d in diffs.items()
    }


def change_points(values: np.ndarray, sigma: float) -> list[int]:
    """Positions where a new segment starts, by PELT with a BIC-like penalty of 2 sigma^2 log n."""
    import ruptures

    if len(values) < 2:
        return []
    penalty = 2.0 * sigma**2 * math.log(max(len(values), 3))
    ends = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(values.reshape(-1, 1)).predict(pen=penalty)
    return [int(e) for e in ends[:-1]]  # the last "end" is the series' length


def metric_threshold(metric: str, quality_threshold: float | None) -> float:
    """The smallest change of a (non-latency) metric that counts: its declared threshold, or
    `quality_threshold` for a score column when given."""
    declared = column(metric)
    threshold = declared.noise(quality_threshold) if declared is not None else quality_threshold
    if threshold is None:
        raise ValueError(f"{metric} has no between-runs threshold")  # metric_columns picks only those that have
    return threshold


def _changes_in(series: Series, spread: float, quality_threshold: float | None) -> list[Change]:
    latency = series.metric == LATENCY
    values = np.log(np.asarray(series.values)) if latency else np.asarray(series.values)
    threshold = LATENCY_SPREAD_FACTOR * spread if latency else metric_threshold(series.metric, quality_threshold)
    sigma = spread if latency else threshold / 3
    bounds = [0, *change_points(values, sigma), len(values)]
    while len(bounds) > 2:  # merge the segments of the smallest sub-threshold change, then look again
        steps = [abs(_mean(values, bounds, k) - _mean(values, bounds, k - 1)) for k in range(1, len(bounds) - 1)]
        smallest = int(np.argmin(steps))
        if steps[smallest] >= threshold:
            break
        del bounds[smallest + 1]
    changes = [
        Change(
            series,
            bounds[k],
            _level(_mean(values, bounds, k - 1), latency),
            _level(_mean(values, bounds, k), latency),
            _level(threshold, latency) if latency else threshold,
            confirmed=not series.noisy or not all(series.noisy[bounds[k] : bounds[k + 1]]),
        )
        for k in range(1, len(bounds) - 1)
    ]
    return _mark_drifts(changes)


def _level(value: float, latency: bool) -> float:
    """Back from the scale the series was segmented on (log for latency) to the metric's own unit."""
    return float(np.exp(value)) if latency else float(value)


def _mark_drifts(changes: list[Change]) -> list[Change]:
    """Consecutive changes in the same direction with short segments between them are a drift."""
    kinds = ["step"] * len(changes)
    for k in range(1, len(changes)):
        a, b = changes[k - 1], changes[k]
        if a.worse == b.worse and b.position - a.position <= DRIFT_GAP:
            kinds[k - 1] = kinds[k] = "drift"
    return [replace(c, kind=kind) for c, kind in zip(changes, kinds)]


def _mean(values: np.ndarray, bounds: list[int], k: int) -> float:
    """The mean of segment k (between bounds[k] and bounds[k + 1])."""
    return float(values[bounds[k] : bounds[k + 1]].mean())


def build_history(root: Path, since: dt.datetime | None = None, quality_threshold: float | None = None) -> History:
    """`quality_threshold` None: each column's declared threshold; a number replaces every score column's."""
    if quality_threshold is not None and not quality_threshold > 0:
        raise UsageError(f"--quality-threshold {quality_threshold} is not valid; expected a positive number")
    runs = find_runs(root, since)
    series = build_series(runs)
    spread = latency_spread(series)
    changes = [
        change
        for s in series
        for change in _changes_in(s, spread.get(s.machine_label, MIN_LATENCY_SPREAD), quality_threshold)
    ]
    changes.sort(key=lambda c: (runs[c.first_run].date, c.series.label, c.series.metric), reverse=True)
    return History(root, tuple(runs), tuple(series), tuple(changes), spread, quality_threshold)
