"""Self-contained HTML report of a run: figures are base64 PNGs and the CSS is inline, so report.html
can be attached to a CI job or mailed, and opens without the run folder or any network access."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report import environment_lines, summary_table
from bench.results import IDENTITY_COLUMNS, add_speedup

DPI, WIDTH_IN = 100, 9.0
BLUE, GREY = "#1f6fb4", "#888888"
CSS = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.8em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; white-space: nowrap; } th { background: #f0f0f0; }
.table-wrap { overflow-x: auto; } .note { color: #555; font-size: 0.9em; }
img.figure { display: block; max-width: 100%; height: auto; margin: 0.5em 0 1.5em; }"""
# Counts the images the browser really decoded; the browser test reads the attribute back from the DOM.
IMAGE_CHECK = ("<script>window.addEventListener('load', () => { document.body.dataset.imagesLoaded = "
               "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });</script>")
NOTE = ("p50/p90/p99: latency percentiles per batch; speedup: fp32 eager p50 / this p50, same run; Δ: difference "
        "to the fp32 reference of the same model; agreement: fraction of pixels predicted the same as the fp32 reference.")


def pareto_front(df: pd.DataFrame, x: str = "latency_p50_ms", y: str = "dice_drift", y_tolerance: float = 1e-4) -> list[int]:
    """Index labels of the rows no other row beats on both lower `x` and higher `y`, sorted by `x`
    (dominated: another row is as good on both and better on one; rows missing a value take no part).
    Drift differences within `y_tolerance` count as equal: a 1e-6 Dice gap is not evidence."""
    pts = df[[x, y]].dropna()
    front = [i for i, (px, py) in pts.iterrows()
             if not ((pts[x] <= px) & (pts[y] >= py - y_tolerance) & ((pts[x] < px) | (pts[y] > py + y_tolerance))).any()]
    return sorted(front, key=lambda i: (pts.at[i, x], -pts.at[i, y]))


def cell_labels(df: pd.DataFrame) -> list[str]:
    """`backend:precision`, plus whichever identity columns vary, so labels are short yet unique."""
    varying = {c for c in IDENTITY_COLUMNS if c in df and df[c].nunique() > 1}

    def label(row: pd.Series) -> str:
        parts = ["/".join(str(row[c]) for c in ("suite", "model") if c in varying), f"{row['backend']}:{row['precision']}"]
        if "device" in varying:
            parts.append(str(row["device"]))
        if "batch_size" in varying:
            parts.append(f"b{row['batch_size']}")
        return " ".join(p for p in parts if p)

    return [label(row) for _, row in df.iterrows()]


def _figure(height_in: float, rows: int = 1) -> tuple[Figure, list[Axes]]:
    """An Agg figure outside pyplot: no global backend switch, nothing left open to close."""
    fig = Figure(figsize=(WIDTH_IN, height_in))
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(rows, 1, squeeze=False)[:, 0])


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _barh(rows: pd.DataFrame) -> tuple[Figure, Axes]:
    """Horizontal bars, first row on top; the height grows with the rows so labels never crowd."""
    fig, (ax,) = _figure(0.9 + 0.42 * len(rows))
    ax.set_yticks(range(len(rows)), cell_labels(rows))
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return fig, ax


def latency_figure(ok: pd.DataFrame) -> str | None:
    """p50 bars, whiskers to p99 and a p90 tick: the tail matters as much as the median."""
    rows = ok.dropna(subset=["latency_p50_ms"])
    if rows.empty:
        return None
    fig, ax = _barh(rows)
    pos, p50 = range(len(rows)), rows["latency_p50_ms"]
    p99 = rows.get("latency_p99_ms", p50).fillna(p50)
    handles = [ax.barh(pos, p50, color=BLUE, alpha=0.8, label="p50"),
               ax.errorbar(p50, pos, xerr=[[0] * len(rows), (p99 - p50).clip(lower=0)], fmt="none", ecolor="#222",
                           capsize=4, label="whisker to p99")]
    if "latency_p90_ms" in rows:
        handles[1:1] = ax.plot(rows["latency_p90_ms"], pos, "|", color="#d62728", markersize=14, mew=2, label="p90")
    ax.set_xlabel("latency per batch (ms)")
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize="small")
    return _png(fig)


def size_figure(ok: pd.DataFrame) -> str | None:
    """Artifact size on disk, the other half of the int8 promise."""
    rows = ok.dropna(subset=["model_size_bytes"]) if "model_size_bytes" in ok else ok.iloc[:0]
    if rows.empty:
        return None
    fig, ax = _barh(rows)
    mib = rows["model_size_bytes"] / 2**20
    ax.bar_label(ax.barh(range(len(rows)), mib, color="#2ca02c", alpha=0.8), fmt="%.2f", padding=3, fontsize="small")
    ax.set(xlabel="model size on disk (MiB)", xlim=(0, mib.max() * 1.12))
    return _png(fig)


def _separate_labels(fig: Figure, texts: list) -> None:
    """Push point labels down until none overlaps another: backends of near-equal latency are common."""
    fig.canvas.draw()
    placed: list = []
    for text in texts:
        for _ in range(20):
            if not any(text.get_window_extent().overlaps(box) for box in placed):
                break
            text.xyann = (text.xyann[0], text.xyann[1] - 11)
        placed.append(text.get_window_extent())


def _drift_panel(ax: Axes, group: pd.DataFrame, y: str) -> list:
    """One suite/model: every cell a labelled point, the Pareto front filled and joined by a step line."""
    front = pareto_front(group, y=y)
    best, rest = group.loc[front], group.drop(index=front)
    ax.axhline(0, color="#bbb", linestyle="--", linewidth=1)
    ax.step(best["latency_p50_ms"], best[y], where="post", color=BLUE, alpha=0.6)
    ax.scatter(best["latency_p50_ms"], best[y], s=60, color=BLUE, zorder=3,
               label="Pareto-optimal: no other cell is both faster and closer to fp32")
    ax.scatter(rest["latency_p50_ms"], rest[y], s=60, facecolors="white", edgecolors=GREY, linewidths=1.5,
               zorder=3, label="dominated")
    low, high = group["latency_p50_ms"].min(), group["latency_p50_ms"].max()
    ax.set_xlim(low - 0.1 * ((high - low) or high), high + 0.3 * ((high - low) or high))  # room for the last label
    ax.margins(y=0.25)
    ax.set(xlabel="p50 latency (ms)", ylabel=f"{y} vs fp32 (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return [ax.annotate(label, (x, v), xytext=(7, 5), textcoords="offset points", fontsize="small",
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
            for label, x, v in zip(cell_labels(group), group["latency_p50_ms"], group[y])]


def drift_figure(ok: pd.DataFrame) -> str | None:
    """Drift vs p50, one panel per suite/model, since drift is measured against that model's own fp32."""
    y = next((c for c in ("dice_drift", "miou_drift") if c in ok and ok[c].notna().any()), None)
    rows = ok.dropna(subset=["latency_p50_ms", y]) if y else ok.iloc[:0]
    if rows.empty:
        return None
    groups = list(rows.groupby(["suite", "model"], sort=False))
    fig, axes = _figure(4.6 * len(groups), rows=len(groups))
    texts = []
    for ax, ((suite, model), group) in zip(axes, groups):
        texts += _drift_panel(ax, group, y)
        ax.set_title(f"{suite} / {model}")
    fig.tight_layout()
    _separate_labels(fig, texts)
    return _png(fig)


def dice_box_chart(per_image: pd.DataFrame, ok: pd.DataFrame) -> Figure | None:
    """Per-image Dice spread: a good mean can hide a few images an int8 model gets badly wrong."""
    keys = [c for c in IDENTITY_COLUMNS if c in per_image and c in ok]
    per_image = per_image.dropna(subset=["dice"])
    groups = list(ok[keys].merge(per_image, on=keys).groupby(keys, sort=False))  # in the order of `ok`
    if not groups:
        return None
    fig, ax = _barh(pd.DataFrame([key for key, _ in groups], columns=keys))
    ax.boxplot([g["dice"].to_numpy() for _, g in groups], orientation="horizontal", positions=range(len(groups)),
               widths=0.6, flierprops={"markersize": 3}, manage_ticks=False)
    ax.set_xlabel("foreground Dice per evaluation image")
    return fig


def dice_box_figure(per_image: pd.DataFrame, ok: pd.DataFrame) -> str | None:
    fig = dice_box_chart(per_image, ok)
    return _png(fig) if fig is not None else None


def _img(uri: str, alt: str) -> str:
    return f'<img class="figure" src="{uri}" alt="{html.escape(alt)}">'


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def _figures(run_dir: Path, df: pd.DataFrame) -> list[str]:
    """The figure sections this run has data for; missing data means a missing figure, not an error."""
    ok = df[df["status"] == "ok"]
    ok = pd.concat([g for _, g in ok.groupby(["suite", "model"], sort=False)]) if len(ok) else ok  # models together
    per_image = run_dir / "per_image.parquet"
    figures = [
        ("Latency per backend", latency_figure(ok),
         "Horizontal bars of p50 latency per backend, whiskers to p99, red tick at p90"),
        ("Model size per backend", size_figure(ok), "Horizontal bars of model size on disk in MiB per backend"),
        ("Accuracy drift vs latency", drift_figure(ok),
         "Accuracy drift against p50 latency per backend; Pareto-optimal backends filled and joined by a step line"),
        ("Per-image Dice", dice_box_figure(pd.read_parquet(per_image), ok) if per_image.exists() else None,
         "Box chart of per-image foreground Dice per backend"),
    ]
    sections = [_section(title, _img(uri, alt)) for title, uri, alt in figures if uri]
    if gradcams := sorted((run_dir / "figures").glob("gradcam_*.png")):
        sections.append(_section("Grad-CAM", "\n".join(
            _img("data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii"),
                 f"Grad-CAM montage {p.stem.removeprefix('gradcam_')}") for p in gradcams)))
    return sections


def _status_list(df: pd.DataFrame) -> str:
    """Cells without numbers, each with its reason: a failed backend must not vanish from the report."""
    bad = df[df["status"] != "ok"]
    items = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(str(status))}</li>"
                    for label, status in zip(cell_labels(bad), bad["status"]))
    return f"<ul>{items}</ul>" if len(bad) else "<p>Every cell ran.</p>"


def render_html(run_dir: Path, df: pd.DataFrame, env: dict[str, Any]) -> str:
    """The whole page as one string."""
    table = summary_table(df, fmt="html").replace("<table>", '<table id="summary">', 1)
    env_items = "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in environment_lines(env))
    title = f"segbench run {html.escape(run_dir.name)}"
    return "\n".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>",
        f"<style>{CSS}</style></head><body>", f"<h1>{title}</h1>",
        _section("Summary", f'<div class="table-wrap">{table}</div>\n<p class="note">{html.escape(NOTE)}</p>'),
        *_figures(run_dir, df),
        _section("Cells without results", _status_list(df)),
        _section("Environment", f"<ul>{env_items}</ul>"),
        IMAGE_CHECK, "</body></html>\n"])


def write_html(run_dir: Path) -> Path:
    """Write run_dir/report.html from the run folder's own files, so `segbench report DIR` can redo it."""
    df = pd.read_parquet(run_dir / "results.parquet")
    if "speedup_vs_fp32" not in df:
        df = add_speedup(df)
    env_path = run_dir / "env.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    path = run_dir / "report.html"
    path.write_text(render_html(run_dir, df, env), encoding="utf-8")
    return path
