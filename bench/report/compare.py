"""Regression comparison of two run folders, for nightly runs and hardware reports.

Rows are matched by (suite, model, backend, precision, device, batch size; a shape sweep's input size).
A latency regression needs both a median ratio above the threshold *and* a Mann-Whitney U test on the raw samples saying
the two sample sets differ (p < 0.01), so shared-machine noise does not page anyone. Every column
declared with a between-runs threshold (bench/results/columns.py: quality, drift, agreement, boundary,
per-class, SQNR, Grad-CAM) regresses when it moves by more than that threshold in its worse direction;
`--quality-threshold` replaces the threshold of every score column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from tabulate import tabulate

from bench.environment import machine_fingerprint
from bench.errors import UsageError
from bench.report.decision import run_decision
from bench.results.columns import LATENCY_THRESHOLD, between_runs, column
from bench.results.files import read_json, read_results, read_table
from bench.results.row import IDENTITY_COLUMNS

P_VALUE = 0.01


@dataclass(frozen=True)
class Run:
    path: Path
    results: pd.DataFrame
    samples: pd.DataFrame | None
    env: dict[str, Any]

    @property
    def machine(self) -> str:
        cpu = self.env.get("cpu_model") or "unknown CPU"
        gpu = self.env.get("gpu")
        return f"{cpu}{' + ' + gpu if gpu else ''} ({self.env.get('threads')} threads)"


@dataclass(frozen=True)
class Comparison:
    table: pd.DataFrame  # one row per matched cell
    regressions: list[str]
    only_baseline: list[str]
    only_current: list[str]
    warnings: list[str] = field(default_factory=list)
    verdicts: dict[str, list[ColumnVerdict]] = field(default_factory=dict)  # per matched row ("suite/model/...")


def load_run(path: Path) -> Run:
    if not path.is_dir():
        raise UsageError(f"run folder '{path}' does not exist")
    results = path / "results.parquet"
    if not results.is_file():
        raise UsageError(f"'{path}' has no results.parquet; expected a segbench run folder")
    samples = path / "samples.parquet"
    env = path / "env.json"
    return Run(
        path,
        read_results(path),
        read_table(samples, ("latency_ns",)) if samples.is_file() else None,
        read_json(env) if env.is_file() else {},
    )


def _key(row: pd.Series | dict[str, Any]) -> tuple:
    return tuple(str(row[c]) for c in IDENTITY_COLUMNS)


def _samples(run: Run, key: tuple) -> np.ndarray:
    if run.samples is None:
        return np.array([])
    mask = np.ones(len(run.samples), bool)
    for name, value in zip(IDENTITY_COLUMNS, key):
        mask &= run.samples[name].astype(str).to_numpy() == value
    return run.samples.loc[mask, "latency_ns"].to_numpy()


def latency_verdict(baseline_ns: np.ndarray, current_ns: np.ndarray, threshold: float) -> tuple[float, float, bool]:
    """(median ratio current/baseline, Mann-Whitney p-value, regressed?)."""
    ratio = float(np.median(current_ns) / np.median(baseline_ns))
    if len(baseline_ns) < 3 or len(current_ns) < 3:
        return ratio, math.nan, False
    p = float(mannwhitneyu(current_ns, baseline_ns, alternative="two-sided").pvalue)
    return ratio, p, ratio > 1 + threshold and p < P_VALUE


def _gradcam_comparable(base: pd.Series, cur: pd.Series) -> bool:
    """Grad-CAM divergences are compared only between maps made by the same method, both valid: a change
    of method moves the number as much as a change of model does."""
    same = str(base.get("gradcam_method")) == str(cur.get("gradcam_method"))
    invalid = any(str(row.get("gradcam_status", "ok")).startswith("invalid") for row in (base, cur))
    return same and not invalid


@dataclass(frozen=True)
class ColumnVerdict:
    """One column of one matched row, judged: what `compare --format json` lists for every compared column,
    so a reader sees what was judged unchanged or left unjudged, and why, not only the regressions."""

    column: str
    baseline: float | None
    current: float | None
    worse_by: float | None  # in the column's direction (negative: better); relative for latency
    threshold: float | None
    verdict: str  # VERDICTS
    reason: str = ""


VERDICTS = ("regression", "improvement", "unchanged", "not judged")


def column_verdicts(base: pd.Series, cur: pd.Series, threshold: float | None) -> list[ColumnVerdict]:
    """Every declared between-runs column of the baseline row, judged against its threshold (`threshold`,
    when given, for score columns); Grad-CAM's main columns only between maps of one method, both valid."""
    comparable = _gradcam_comparable(base, cur)
    verdicts = []
    for name in between_runs(base.index):
        declared = column(name)
        if declared is None:
            continue
        before, after = base[name], cur.get(name)
        values = (float(before) if _number(before) else None, float(after) if _number(after) else None)
        noise = declared.noise(threshold)
        if not comparable and name.startswith("gradcam_") and not name.endswith("@fakequant"):
            verdicts.append(
                ColumnVerdict(
                    name, *values, None, noise, "not judged", "Grad-CAM maps of different methods, or an invalid one"
                )
            )
        elif values[0] is None or values[1] is None or noise is None:
            verdicts.append(ColumnVerdict(name, *values, None, noise, "not judged", "no number on both sides"))
        else:
            worse = declared.worse_by(values[0], values[1])
            verdict = "regression" if worse > noise else "improvement" if -worse > noise else "unchanged"
            verdicts.append(ColumnVerdict(name, *values, worse, noise, verdict))
    return verdicts


def _quality_regressions(label: str, base: pd.Series, cur: pd.Series, threshold: float | None) -> list[str]:
    """Every declared between-runs column that got worse by more than its threshold, in words."""
    return [
        f"{label}: {v.column} {v.baseline:.4f} -> {v.current:.4f} (worse by {v.worse_by:.4f} > {v.threshold:g})"
        for v in column_verdicts(base, cur, threshold)
        if v.verdict == "regression"
    ]


def _number(value: Any) -> bool:
    """A finite number (not NaN, not a flag, not text)."""
    plain = isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
    return plain and math.isfinite(value)


def noisy_sides(base: pd.Series, cur: pd.Series) -> str | None:
    """Which side(s) were timed on a busy or slow machine (`timing_quality` noisy), or None."""
    noisy = [
        name
        for name, row in (("baseline", base), ("current", cur))
        if str(row.get("timing_quality", "")).startswith("noisy")
    ]
    return " and ".join(noisy) if noisy else None


def _different_checkpoints(base: pd.Series, cur: pd.Series) -> str | None:
    """A warning when the two rows measured different float models (each machine trained its own)."""
    ours, theirs = base.get("checkpoint_digest"), cur.get("checkpoint_digest")
    if not isinstance(ours, str) or not isinstance(theirs, str) or ours == theirs:
        return None
    return (
        f"different reference checkpoints ({ours} vs {theirs}): the sides measured different float models; "
        "share one with segbench train --export and segbench run --checkpoint"
    )


def _latency_column(
    base: pd.Series, cur: pd.Series, ratio: float, p: float, threshold: float, noisy: str | None, judge: bool
) -> ColumnVerdict:
    """The p50 latency's verdict: a ratio past the threshold that the Mann-Whitney test calls significant."""
    values = (float(base["latency_p50_ms"]), float(cur["latency_p50_ms"]))
    significant = not math.isnan(p) and p < P_VALUE
    if noisy:
        return ColumnVerdict("latency_p50_ms", *values, ratio - 1, threshold, "not judged", f"noisy ({noisy})")
    if not judge:
        return ColumnVerdict("latency_p50_ms", *values, ratio - 1, threshold, "not judged", "another machine (--by)")
    if math.isnan(p):
        verdict, reason = "not judged", "fewer than 3 raw samples on a side"
    elif ratio > 1 + threshold and significant:
        verdict, reason = "regression", f"Mann-Whitney p={p:.2g}"
    elif ratio < 1 - threshold and significant:
        verdict, reason = "improvement", f"Mann-Whitney p={p:.2g}"
    else:
        verdict, reason = "unchanged", f"Mann-Whitney p={p:.2g}"
    return ColumnVerdict("latency_p50_ms", *values, ratio - 1, threshold, verdict, reason)


COMPARE_BY = ("machine",)  # `compare --by`: side by side per machine, each with its decision
FORMATS = ("markdown", "json")  # `compare --format`: the Markdown report, or compare_json.py's document


def compare_runs(
    baseline: Run,
    current: Run,
    latency_threshold: float = LATENCY_THRESHOLD,
    quality_threshold: float | None = None,
    judge_latency: bool = True,
) -> Comparison:
    """`judge_latency=False` for hardware reports: ratios are shown, but another machine is not a regression.
    `quality_threshold` None: each column's declared threshold; a number replaces every score column's."""
    base_rows = {_key(r): r for _, r in baseline.results.iterrows()}
    cur_rows = {_key(r): r for _, r in current.results.iterrows()}
    matched = [k for k in base_rows if k in cur_rows]
    if not matched:
        raise UsageError(f"no rows of '{current.path}' match '{baseline.path}' by {', '.join(IDENTITY_COLUMNS)}")
    table, regressions, warnings = [], [], []
    verdicts: dict[str, list[ColumnVerdict]] = {}
    for key in matched:
        base, cur = base_rows[key], cur_rows[key]
        label = "/".join(key)
        if (different := _different_checkpoints(base, cur)) is not None:
            warnings.append(f"{label}: {different}")
        entry: dict[str, Any] = dict(zip(IDENTITY_COLUMNS, key))
        entry.update(baseline_status=base["status"], current_status=cur["status"])
        if base["status"] == "ok" and cur["status"] != "ok":
            regressions.append(f"{label}: status ok -> {cur['status']}")
        if base["status"] == "ok" and cur["status"] == "ok":
            ratio, p, slower = latency_verdict(_samples(baseline, key), _samples(current, key), latency_threshold)
            if math.isnan(ratio) or not len(_samples(baseline, key)):
                ratio = float(cur["latency_p50_ms"] / base["latency_p50_ms"])
            noisy = noisy_sides(base, cur)
            if noisy:  # a time from a busy machine is no evidence either way
                slower, verdict = False, f"not judged: noisy ({noisy})"
            else:
                verdict = "REGRESSION" if slower else ""
            entry.update(
                baseline_p50_ms=base["latency_p50_ms"],
                current_p50_ms=cur["latency_p50_ms"],
                latency_ratio=ratio,
                p_value=p,
                latency_regression=slower,
                latency_verdict=verdict,
            )
            if slower and judge_latency:
                regressions.append(
                    f"{label}: latency p50 {base['latency_p50_ms']:.3f} -> {cur['latency_p50_ms']:.3f} ms "
                    f"(x{ratio:.3f}, Mann-Whitney p={p:.2g})"
                )
            for column in ("dice", "dice_drift", "model_size_bytes"):
                if column in base.index:
                    entry[f"baseline_{column}"], entry[f"current_{column}"] = base[column], cur.get(column)
            judged = column_verdicts(base, cur, quality_threshold)
            verdicts[label] = [_latency_column(base, cur, ratio, p, latency_threshold, noisy, judge_latency), *judged]
            regressions += _quality_regressions(label, base, cur, quality_threshold)
        table.append(entry)
    if machine_fingerprint(baseline.env) != machine_fingerprint(current.env):
        warnings.append(
            f"the runs come from different machines or settings: baseline {baseline.machine}, "
            f"current {current.machine}; latency differences include the hardware"
        )
    return Comparison(
        pd.DataFrame(table),
        regressions,
        ["/".join(k) for k in base_rows if k not in cur_rows],
        ["/".join(k) for k in cur_rows if k not in base_rows],
        warnings,
        verdicts,
    )


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "REGRESSION" if value else ""
    return f"{value:.{digits}f}" if isinstance(value, (float, np.floating)) else str(value)


def decision_per_machine(*runs: Run) -> list[str]:
    """`compare --by machine`: each folder's decision (its own budgets and objective), group by group, side
    by side: which backend each machine should ship, and why the others are not first."""
    decided = [(run.machine, run_decision(run.path, run.results)) for run in runs]
    lines = ["## Decision per machine", ""]
    keys: dict[tuple[str, str, str, int], list[str]] = {}
    for machine, decision in decided:
        for group in decision.groups:
            winner = group.recommended
            text = f"{machine}{', ' + group.machine if group.machine else ''}: {group.headline}"
            others = [e for e in group.entries if e is not winner][:3]
            text += "".join(f"; {e.backend} {e.precision}: {e.verdict} ({e.reason})" for e in others)
            keys.setdefault((group.suite, group.model, group.device, group.batch_size), []).append(text)
    for (suite, model, device, batch), texts in keys.items():
        lines += [f"**{suite} / {model} ({device}, batch {batch})**", "", *(f"- {line}" for line in texts), ""]
    return lines


def to_markdown(comparison: Comparison, baseline: Run, current: Run, by_machine: bool = False) -> str:
    names = (baseline.machine, current.machine) if by_machine else ("baseline", "current")
    lines = [
        "# segbench compare",
        "",
        f"- baseline: `{baseline.path}` — {baseline.machine}",
        f"- current: `{current.path}` — {current.machine}",
        "",
    ]
    lines += [f"> warning: {w}" for w in comparison.warnings] + ([""] if comparison.warnings else [])
    df = comparison.table
    groups = df.groupby(["suite", "model"], sort=False) if by_machine else [(None, df)]
    for group, part in groups:
        if group is not None:
            lines += [f"## {group[0]} / {group[1]}", ""]
        rows = [
            [
                r.backend,
                r.precision,
                r.device,
                f"{r.batch_size} @{r.input_size}" if r.get("input_size") else r.batch_size,
                _fmt(r.get("baseline_p50_ms")),
                _fmt(r.get("current_p50_ms")),
                _fmt(r.get("latency_ratio")),
                _fmt(r.get("p_value"), 4),
                r.get("latency_verdict") if isinstance(r.get("latency_verdict"), str) else "",
                _fmt(r.get("baseline_dice"), 4),
                _fmt(r.get("current_dice"), 4),
                r.current_status,
            ]
            for _, r in part.iterrows()
        ]
        headers = [
            "backend",
            "precision",
            "device",
            "batch",
            f"{names[0]} p50 ms",
            f"{names[1]} p50 ms",
            "ratio",
            "p (MWU)",
            "latency",
            f"{names[0]} dice",
            f"{names[1]} dice",
            "status",
        ]
        if group is None:
            rows = [[r.suite, r.model, *row] for row, (_, r) in zip(rows, part.iterrows())]
            headers = ["suite", "model", *headers]
        lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    if by_machine and "latency_ratio" in df:
        ratios = (
            df.dropna(subset=["latency_ratio"])
            .groupby("backend")["latency_ratio"]
            .apply(lambda r: float(np.exp(np.log(r).mean())))
        )
        lines += [
            "## Geometric-mean latency ratio per backend (current / baseline)",
            "",
            tabulate([[b, f"{v:.3f}"] for b, v in ratios.items()], headers=["backend", "ratio"], tablefmt="github"),
            "",
        ]
    if by_machine:
        lines += decision_per_machine(baseline, current)
    lines += ["## Regressions", ""] + ([f"- {r}" for r in comparison.regressions] or ["none"]) + [""]
    if comparison.only_baseline or comparison.only_current:
        lines += ["## Rows on one side only", ""]
        lines += [f"- only in baseline: {k}" for k in comparison.only_baseline]
        lines += [f"- only in current: {k}" for k in comparison.only_current] + [""]
    return "\n".join(lines)
