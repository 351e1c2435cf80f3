"""The report's charts (matplotlib, drawn off-screen): latency, size, drift against latency with its
Pareto front, and the per-image Dice spread. Each returns a PNG data URI for the self-contained page,
or None when the run has no data for it."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.tables import headline_drift
from bench.results.row import IDENTITY_COLUMNS

DPI, WIDTH_IN = 100, 9.0
BLUE, GREY = "#1f6fb4", "#888888"


def pareto_front(
    df: pd.DataFrame, x: str = "latency_p50_ms", y: str = "dice_drift", y_tolerance: float = 1e-4
) -> list[int]:
    """Index labels of the rows no other row beats on both lower `x` and higher `y`, sorted by `x`
    (dominated: another row is as good on both and better on one; rows missing a value take no part).
    Drift differences within `y_tolerance` count as equal: a 1e-6 Dice gap is not evidence."""
    pts = df[[x, y]].dropna()
    front = [
        i
        for i, (px, py) in pts.iterrows()
        if not ((pts[x] <= px) & (pts[y] >= py - y_tolerance) & ((pts[x] < px) | (pts[y] > py + y_tolerance))).any()
    ]
    return sorted(front, key=lambda i: (pts.at[i, x], -pts.at[i, y]))


def cell_labels(df: pd.DataFrame) -> list[str]:
    """`backend:precision`, plus whichever identity columns vary, so labels are short yet unique."""
    varying = {c for c in IDENTITY_COLUMNS if c in df and df[c].nunique() > 1}

    def label(row: pd.Series) -> str:
        parts = [
            "/".join(str(row[c]) for c in ("suite", "model") if c in varying),
            f"{row['backend']}:{row['precision']}",
        ]
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


def png_file_uri(path: Path) -> str:
    """A PNG already on disk (a montage, a profile bar) as a data URI, for a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def png_uri(fig: Figure) -> str:
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
    if "latency_p50_ms" not in ok:  # no cell ran: error and unavailable rows carry no numbers
        return None
    rows = ok.dropna(subset=["latency_p50_ms"])
    if rows.empty:
        return None
    fig, ax = _barh(rows)
    pos, p50 = range(len(rows)), rows["latency_p50_ms"]
    p99 = rows.get("latency_p99_ms", p50).fillna(p50)
    handles: list[Any] = [
        ax.barh(pos, p50, color=BLUE, alpha=0.8, label="p50"),
        ax.errorbar(
            p50,
            pos,
            xerr=[[0] * len(rows), (p99 - p50).clip(lower=0)],
            fmt="none",
            ecolor="#222",
            capsize=4,
            label="whisker to p99",
        ),
    ]
    if "latency_p90_ms" in rows:
        handles[1:1] = ax.plot(rows["latency_p90_ms"], pos, "|", color="#d62728", markersize=14, mew=2, label="p90")
    ax.set_xlabel("latency per batch (ms)")
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize="small")
    return png_uri(fig)


def size_figure(ok: pd.DataFrame) -> str | None:
    """Artifact size on disk, the other half of the int8 promise."""
    rows = ok.dropna(subset=["model_size_bytes"]) if "model_size_bytes" in ok else ok.iloc[:0]
    if rows.empty:
        return None
    fig, ax = _barh(rows)
    mib = rows["model_size_bytes"] / 2**20
    ax.bar_label(ax.barh(range(len(rows)), mib, color="#2ca02c", alpha=0.8), fmt="%.2f", padding=3, fontsize="small")
    ax.set(xlabel="model size on disk (MiB)", xlim=(0, mib.max() * 1.12))
    return png_uri(fig)


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
    ax.scatter(
        best["latency_p50_ms"],
        best[y],
        s=60,
        color=BLUE,
        zorder=3,
        label="Pareto-optimal: no other cell is both faster and closer to fp32",
    )
    ax.scatter(
        rest["latency_p50_ms"],
        rest[y],
        s=60,
        facecolors="white",
        edgecolors=GREY,
        linewidths=1.5,
        zorder=3,
        label="dominated",
    )
    low, high = group["latency_p50_ms"].min(), group["latency_p50_ms"].max()
    ax.set_xlim(low - 0.1 * ((high - low) or high), high + 0.3 * ((high - low) or high))  # room for the last label
    ax.margins(y=0.25)
    ax.set(xlabel="p50 latency (ms)", ylabel=f"{y} vs fp32 (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return [
        ax.annotate(
            label,
            (x, v),
            xytext=(7, 5),
            textcoords="offset points",
            fontsize="small",
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )
        for label, x, v in zip(cell_labels(group), group["latency_p50_ms"], group[y])
    ]


def drift_chart(ok: pd.DataFrame) -> Figure | None:
    """Drift vs p50, one panel per suite/model, since drift is measured against that model's own fp32;
    each panel on its suite's headline drift (`headline_drift`: mIoU on a multi-class suite, Dice on a
    binary one)."""
    if "latency_p50_ms" not in ok:
        return None
    panels = []
    for (suite, model), group in ok.groupby(["suite", "model"], sort=False):
        y = headline_drift(group)
        if y is None:
            continue
        rows = group.dropna(subset=["latency_p50_ms", y])
        if not rows.empty:
            panels.append((f"{suite} / {model}", y, rows))
    if not panels:
        return None
    fig, axes = _figure(4.6 * len(panels), rows=len(panels))
    texts = []
    for ax, (title, y, rows) in zip(axes, panels):
        texts += _drift_panel(ax, rows, y)
        ax.set_title(title)
    fig.tight_layout()
    _separate_labels(fig, texts)
    return fig


def drift_figure(ok: pd.DataFrame) -> str | None:
    fig = drift_chart(ok)
    return png_uri(fig) if fig is not None else None


def dice_box_chart(per_image: pd.DataFrame, ok: pd.DataFrame) -> Figure | None:
    """Per-image Dice spread: a good mean can hide a few images an int8 model gets badly wrong."""
    keys = [c for c in IDENTITY_COLUMNS if c in per_image and c in ok]
    per_image = per_image.dropna(subset=["dice"])
    groups = list(ok[keys].merge(per_image, on=keys).groupby(keys, sort=False))  # in the order of `ok`
    if not groups:
        return None
    fig, ax = _barh(pd.DataFrame([key for key, _ in groups], columns=keys))
    ax.boxplot(
        [g["dice"].to_numpy() for _, g in groups],
        orientation="horizontal",
        positions=range(len(groups)),
        widths=0.6,
        flierprops={"markersize": 3},
        manage_ticks=False,
    )
    ax.set_xlabel("foreground Dice per evaluation image")
    return fig


def dice_box_figure(per_image: pd.DataFrame, ok: pd.DataFrame) -> str | None:
    fig = dice_box_chart(per_image, ok)
    return png_uri(fig) if fig is not None else None
