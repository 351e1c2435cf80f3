"""The report of a tune folder: the chosen configuration, the layers ranked by sensitivity, the quality
vs latency path of the greedy steps, the evaluation split's confirmation, the runtime's own accuracy
control beside it (where the backend has one), and the calibration study,
as report.md and a self-contained report.html (figures as base64 PNGs, also in figures/)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.charts import _figure, png_uri
from bench.report.html import CSS, IMAGE_CHECK
from bench.results.columns import judged

SENSITIVITY_SHOWN = 20


def _budget_columns(config: dict[str, Any]) -> list[str]:
    """The budgets' columns, first budget first (`budget_lines`: [column, op, bound, text] each)."""
    return list(dict.fromkeys(line[0] for line in config.get("budget_lines", [])))


def _primary(config: dict[str, Any], calibration: pd.DataFrame) -> str:
    columns = _budget_columns(config)
    if columns:
        return columns[0]
    return "miou_drift" if "miou_drift" in calibration else "dice_drift"


def sensitivity_table(sensitivity: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """The most sensitive layers first: the first budget column's gain when the layer alone is in float."""
    if sensitivity.empty:
        return sensitivity
    metric = _budget_columns(config)[0]
    declared = judged(metric)  # lower is better (gradcam_jsd): the most negative gain helped most
    lower = declared is not None and declared.better == "lower"
    ok = sensitivity[sensitivity["status"] == "ok"].sort_values(f"{metric}_gain", ascending=lower)
    columns = ["layer", "op_type", f"{metric}_gain", metric, "miou_gain", "sqnr_db_gain", "layer_sqnr_db"]
    return ok[[c for c in dict.fromkeys(columns) if c in ok]].head(SENSITIVITY_SHOWN)


def path_table(tuning: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    if tuning.empty:
        return tuning
    steps = tuning[tuning["split"].isin(["tuning", "evaluation"])].sort_values(
        ["split", "step"], ascending=[False, True]
    )
    columns = [
        "split",
        "step",
        "n_float_layers",
        "added_layer",
        "latency_p50_ms",
        "speedup_vs_fp32",
        "model_size_bytes",
        *_budget_columns(config),
        "miou",
        "budgets_met",
        "timing_quality",
        "status",
    ]
    table = steps[[c for c in dict.fromkeys(columns) if c in steps]].copy()
    if "model_size_bytes" in table:
        table["model_size_MiB"] = table.pop("model_size_bytes") / 2**20
    return table


def peer_table(tuning: pd.DataFrame, peer: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """segbench's choice (the greedy step that met every budget, else its last) beside the runtime's own
    accuracy control, on the tuning split and on the evaluation split."""
    if peer.empty:
        return pd.DataFrame()
    rows = []
    for split in ("tuning", "evaluation"):
        ours = tuning[tuning["split"] == split].sort_values("step") if not tuning.empty else tuning
        if not ours.empty:
            met = ours[ours["budgets_met"].astype(bool)] if "budgets_met" in ours else ours.iloc[0:0]
            pick = met.iloc[-1] if not met.empty else ours.iloc[-1]
            rows.append({"method": "segbench greedy fallback", **pick.to_dict()})
        theirs = peer[peer["split"] == split]
        rows += [{**row.to_dict()} for _, row in theirs.iterrows()]
    table = pd.DataFrame(rows)
    columns = [
        "method",
        "split",
        "n_float_layers",
        "float_layers",
        "latency_p50_ms",
        "speedup_vs_fp32",
        "model_size_bytes",
        *_budget_columns(config),
        "budgets_met",
        "own_drop",
        "own_seconds",
        "status",
    ]
    table = table[[c for c in dict.fromkeys(columns) if c in table]].copy()
    if "model_size_bytes" in table:
        table["model_size_MiB"] = table.pop("model_size_bytes") / 2**20
    return table


def calibration_table(calibration: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and spread (sample std over seeds, min, max) of the metric per method and size."""
    if calibration.empty or metric not in calibration:
        return pd.DataFrame()
    ok = calibration[calibration["status"] == "ok"]
    grouped = ok.groupby(["method", "size"])[metric]
    return grouped.agg(seeds="count", mean="mean", std="std", min="min", max="max").reset_index()


def path_figure(tuning: pd.DataFrame, config: dict[str, Any]) -> str | None:
    """Quality vs p50 latency of every greedy step (tuning split), labelled with the layers in float."""
    metric = next(iter(_budget_columns(config)), None)
    steps = (
        tuning[(tuning["split"] == "tuning") & tuning.get("latency_p50_ms", pd.Series(dtype=float)).notna()]
        if not tuning.empty
        else tuning
    )
    if metric is None or steps.empty or metric not in steps:
        return None
    fig, (ax,) = _figure(3.6)
    ax.plot(steps["latency_p50_ms"], steps[metric], marker="o", color="#1f77b4")
    for _, row in steps.iterrows():
        ax.annotate(
            str(int(row["n_float_layers"])),
            (row["latency_p50_ms"], row[metric]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    fp32 = steps["fp32_latency_p50_ms"].dropna() if "fp32_latency_p50_ms" in steps else pd.Series(dtype=float)
    if not fp32.empty:
        ax.axvline(float(fp32.median()), color="#888", linestyle=":", label="fp32 eager p50 (median of steps)")
    for column, _, bound, text in config.get("budget_lines", []):
        if column == metric:
            ax.axhline(bound, color="#d62728", linestyle="--", label=f"budget {text}")
    ax.set_xlabel("p50 latency (ms, batch 1, same-run fp32 reference beside each step)")
    ax.set_ylabel(f"{metric} (tuning split)")
    ax.set_title("Greedy fallback: each point one more layer in float (label: layers in float)")
    ax.legend(fontsize=8)
    return png_uri(fig)


def calibration_figure(table: pd.DataFrame, metric: str) -> str | None:
    if table.empty:
        return None
    fig, (ax,) = _figure(3.4)
    for method, rows in table.groupby("method"):
        std = rows["std"].fillna(0.0)
        ax.errorbar(rows["size"], rows["mean"], yerr=std, marker="o", capsize=3, label=str(method))
    ax.set_xscale("log")
    ax.set_xlabel("calibration images (log scale)")
    ax.set_ylabel(f"{metric} (tuning split), mean ± std over seeds")
    ax.set_title("Calibration sensitivity")
    ax.legend(fontsize=8)
    return png_uri(fig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _markdown(df: pd.DataFrame) -> str:
    from tabulate import tabulate

    return tabulate(
        [[_fmt(v) for v in row] for row in df.itertuples(index=False)], headers=list(df.columns), tablefmt="github"
    )


def _save(uri: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(uri.split(",", 1)[1]))


def write_tune_reports(
    folder: Path,
    sensitivity: pd.DataFrame,
    tuning: pd.DataFrame,
    calibration: pd.DataFrame,
    config: dict[str, Any],
    peer: pd.DataFrame | None = None,
) -> list[Path]:
    metric = _primary(config, calibration)
    sections = [
        ("Sensitivity: each layer alone in float (tuning split)", sensitivity_table(sensitivity, config), None),
        (
            "Greedy fallback and the evaluation split's confirmation",
            path_table(tuning, config),
            path_figure(tuning, config),
        ),
    ]
    sections.append(
        (
            "The runtime's own accuracy control beside segbench's fallback (same budget, same tuning split)",
            peer_table(tuning, peer if peer is not None else pd.DataFrame(), config),
            None,
        )
    )
    calib = calibration_table(calibration, metric)
    sections.append((f"Calibration: {metric} by method and size", calib, calibration_figure(calib, metric)))
    suite = config.get("suite_name") or config.get("suite")  # the suite's name; a tune folder from before: --suite
    title = f"segbench tune {folder.name}: {suite} / {config.get('model')} / {config.get('backend')}"
    budgets = ", ".join(config.get("budgets", [])) or "none (calibration study only)"
    md = [f"# {title}", "", f"Budgets: {budgets}", ""]
    page = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Budgets: {html.escape(budgets)}</p>",
    ]
    written = []
    for i, (heading, table, figure) in enumerate(sections):
        if table.empty and figure is None:
            continue
        md += [f"## {heading}", "", _markdown(table) if not table.empty else "", ""]
        page += [
            f"<h2>{html.escape(heading)}</h2>",
            f'<div class="table-wrap">{table.to_html(index=False, float_format=lambda v: f"{v:.4f}")}</div>',
        ]
        if figure is not None:
            name = ["sensitivity", "tuning_path", "peer", "calibration"][i]
            path = folder / "figures" / f"{name}.png"
            _save(figure, path)
            written.append(path)
            md += [f"![{heading}](figures/{name}.png)", ""]
            page.append(f'<img class="figure" src="{figure}" alt="{html.escape(heading)}">')
    page += [IMAGE_CHECK, "</body></html>\n"]
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")
    (folder / "report.html").write_text("\n".join(page), encoding="utf-8")
    return [folder / "report.md", folder / "report.html", *written]
