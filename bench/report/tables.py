"""The summary table of a run (terminal, Markdown, HTML), the Grad-CAM table, and the lines every report
lists (noisy rows, failed stages, the environment); the sections' titles and legends are in
bench/report/sections.py."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.environment import machine_label
from bench.results.columns import judged_threshold
from bench.results.row import stage_failures

SUMMARY_COLUMNS = {
    "suite": "suite",
    "model": "model",
    "backend": "backend",
    "precision": "prec",
    "device": "device",
    "batch_size": "batch",  # the two shape columns only where a run's rows differ in them (a sweep)
    "input_size": "input",
    "status": "status",
    "latency_p50_ms": "p50 ms",
    "latency_p90_ms": "p90 ms",
    "latency_p99_ms": "p99 ms",
    "speedup_vs_fp32": "speedup",
    "timing_quality": "timing",
    "model_size_bytes": "size MiB",
    "backend_rss_mib": "backend RSS MiB",
    "dice": "dice",
    "miou": "mIoU",
    "dice_drift": "Δdice",
    "miou_drift": "ΔmIoU",
    "pixel_agreement": "agreement",
}


def _fmt(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column == "model_size_bytes":
        return f"{value / 2**20:.2f}"
    if column == "speedup_vs_fp32":
        return f"{value:.2f}x"
    if column == "timing_quality":  # the reasons are listed under the table (`noisy_lines`)
        return "NOISY" if str(value).startswith("noisy") else str(value).split(":")[0]
    if column in ("dice", "miou", "pixel_agreement"):
        return f"{value:.4f}"
    if column in ("dice_drift", "miou_drift"):
        return f"{value:+.4f}"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def summary_cells(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The summary table's columns (those the rows have, in `SUMMARY_COLUMNS` order; the batch and input
    size only where the rows differ in them) and formatted cells. The input column reads the size each
    row was timed at, the suite's own too."""
    varies = {c for c in SHAPE_COLUMNS if c in df.columns and df[c].fillna("").astype(str).nunique() > 1}
    columns = [c for c in SUMMARY_COLUMNS if c in df.columns and (c not in SHAPE_COLUMNS or c in varies)]
    return columns, [[_cell(c, row) for c in columns] for _, row in df.iterrows()]


SHAPE_COLUMNS = ("batch_size", "input_size")


def _cell(column: str, row: pd.Series) -> str:
    if column == "input_size" and not row.get("input_size"):
        height, width = row.get("input_height"), row.get("input_width")
        return "" if height is None or pd.isna(height) else f"{int(height)}x{int(width)} (suite)"
    return _fmt(column, row[column])


def summary_table(df: pd.DataFrame, fmt: str = "github") -> str:
    columns, body = summary_cells(df)
    return tabulate(body, headers=[SUMMARY_COLUMNS[c] for c in columns], tablefmt=fmt, disable_numparse=True)


def status_kind(status: Any) -> str:
    """`ok`, `unavailable` or `error`: a status without its reason, short enough for a table cell."""
    return str(status).split(":", 1)[0].strip()


def class_count(rows: pd.DataFrame) -> int:
    """How many classes these rows were scored on (their per-class `iou_vs_reference_<class>` columns)."""
    return sum(1 for c in rows.columns if c.startswith("iou_vs_reference_") and rows[c].notna().any())


def headline_drift(rows: pd.DataFrame) -> str | None:
    """The drift column the rows of one suite are judged by: mIoU drift on a multi-class suite (more than
    two classes; `segbench tune` ranks by it too), Dice drift on a binary one (the Dice of its foreground
    class is the usual headline there); the other one when the first is missing."""
    order = ("miou_drift", "dice_drift") if class_count(rows) > 2 else ("dice_drift", "miou_drift")
    return next((c for c in order if c in rows and rows[c].notna().any()), None)


def environment_lines(env: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    return [
        f"- CPU: {env.get('cpu_model')} ({env.get('logical_cores')} logical cores, {env.get('threads')} threads used)",
        f"- GPU: {env.get('gpu') or 'none'}",
        f"- OS: {env.get('os')}, Python {env.get('python')}",
        f"- Libraries: {libs}",
        f"- Commit: {env.get('git_commit')}{' (dirty)' if env.get('git_dirty') else ''}, date {env.get('date')}",
        *_shard_lines(env),
    ]


def _shard_lines(env: dict[str, Any]) -> list[str]:
    """A shard (`segbench run --shard K/N`) says so; a merged run names the folders it joined."""
    lines = []
    if isinstance(shard := env.get("shard"), dict):
        lines.append(
            f"- Shard {shard.get('index')} of {shard.get('count')}: {len(shard.get('groups', []))} of the matrix's "
            f"{len(shard.get('matrix', {}))} comparison groups (segbench merge joins the shards' folders)"
        )
    for part in env.get("shards") or []:
        shard = part.get("shard")
        lines.append(
            f"- Merged from `{part.get('run')}`"
            + (f" (shard {shard.get('index')} of {shard.get('count')})" if isinstance(shard, dict) else "")
            + f": {part.get('hostname')}, {machine_label(part)}, {part.get('threads')} threads, "
            f"{part.get('rows')} row(s), commit {str(part.get('git_commit'))[:12]}, date {part.get('date')}"
        )
    return lines


def noisy_lines(df: pd.DataFrame) -> list[str]:
    """One line per row timed on a busy or slow machine, with the reasons (its latency is not evidence)."""
    if "timing_quality" not in df:
        return []
    noisy = df[df["timing_quality"].astype(str).str.startswith("noisy")]
    return [
        f"{r.suite} / {r.model} / {r.backend} {r.precision}: {str(r.timing_quality).removeprefix('noisy: ')}"
        for r in noisy.itertuples()
    ]


def stage_failure_lines(df: pd.DataFrame) -> list[str]:
    """One line per stage that failed in a row whose other numbers stand (`<stage>_status` = error: ...):
    a failed evaluation, Grad-CAM method or profile must not vanish from the report with its columns."""
    if "status" not in df:
        return []
    return [
        f"{row['suite']} / {row['model']} / {row['backend']} {row['precision']}: {stage}: {status}"
        for row in df[df["status"] == "ok"].to_dict("records")
        for stage, status in stage_failures(row)
    ]


GRADCAM_COLUMNS = {
    "suite": "suite",
    "model": "model",
    "backend": "backend",
    "precision": "prec",
    "gradcam_layer": "layer",
    "gradcam_method": "method",
    "gradcam_pearson": "Pearson",
    "gradcam_top10_iou": "top-10% IoU",
    "gradcam_pearson@fakequant": "Pearson (fake-quant)",
    "gradcam_status@fakequant": "fake-quant status",
    "gradcam_method_pearson": "fd vs fake-quant",
    "gradcam_step_pearson": "step 2 vs 8",
    "gradcam_floor_pearson": "floor",
    "gradcam_within_noise": "verdict",
    "gradcam_status": "status",
}
# A divergence from fp32 (1 - Pearson) below the smallest Pearson change that counts is no finding, whatever
# the method's own floor: the maps agree to three places (a floor of 0.99999 would otherwise make 0.9999 "beyond")
NEGLIGIBLE_DIVERGENCE = judged_threshold("gradcam_pearson")


def gradcam_verdict(row: pd.Series | dict[str, Any]) -> str:
    """negligible, within method noise, beyond method noise, or "" (no valid maps, or no floor measured)."""
    pearson, within = row.get("gradcam_pearson"), row.get("gradcam_within_noise")
    if not isinstance(pearson, (int, float)) or not math.isfinite(pearson):
        return ""
    if 1.0 - float(pearson) < NEGLIGIBLE_DIVERGENCE:
        return "negligible"
    if within is None or (isinstance(within, float) and math.isnan(within)):
        return ""
    return "within method noise" if bool(within) else "beyond method noise"


def _gradcam_fmt(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in ("gradcam_status", "gradcam_status@fakequant"):
        return str(value).split(":")[0]
    if isinstance(value, float):  # four places: the floors of a well-quantized model sit at 0.999x
        return f"{value:.4f}"
    return str(value)


def gradcam_table(df: pd.DataFrame, fmt: str = "github") -> str:
    """Each explained row's divergence beside its method's own floor, and each row whose Grad-CAM failed or
    is not available here (its status says so); empty when no row went through the Grad-CAM stage."""
    explained = df["gradcam_layer"].notna() if "gradcam_layer" in df.columns else pd.Series(False, index=df.index)
    if "gradcam_status" in df.columns:
        explained |= df["gradcam_status"].notna()
    rows = df[explained]
    if not len(rows):
        return ""
    columns = [c for c in GRADCAM_COLUMNS if c in rows.columns or c == "gradcam_within_noise"]
    body = [
        [gradcam_verdict(row) if c == "gradcam_within_noise" else _gradcam_fmt(c, row[c]) for c in columns]
        for _, row in rows.iterrows()
    ]
    return tabulate(body, headers=[GRADCAM_COLUMNS[c] for c in columns], tablefmt=fmt, disable_numparse=True)


def gradcam_status_lines(df: pd.DataFrame) -> list[str]:
    """One line per row whose maps (either method's) are invalid or describe a simulation, with the reason
    (a method that failed is listed with the stages that failed, one not available here in the table)."""
    lines = []
    for column, what in (("gradcam_status", ""), ("gradcam_status@fakequant", " (fake-quant)")):
        if column not in df:
            continue
        marked = df[df[column].astype(str).str.startswith(("invalid", "simulation"))]
        lines += [
            f"{r['suite']} / {r['model']} / {r['backend']} {r['precision']}{what}: {r[column]}"
            for _, r in marked.iterrows()
        ]
    return lines
