"""Each profiled cell's time per run by op type as a stacked bar (figures/profile_*.png), which report.html
embeds beside the cell's slowest layers (bench/report/profile_report.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.backend.profiling import OVERHEAD_CATEGORIES
from bench.report.figures import figure_name, save_figure
from bench.report.profile_analysis import Cell, cell_profiles, read_profile
from bench.report.profile_text import cell_name, ms_text

TOP_OP_TYPES = 8  # segments of a cell's op-type bar; the rest is "other"


def op_type_chart(ops: pd.DataFrame, title: str, p50_ms: float | None = None, top: int = TOP_OP_TYPES) -> Figure:
    """One stacked horizontal bar of a cell's time per run by op type: its `top` op types, largest
    first, the rest as "other"; ops of an overhead category hatched; the cell's unprofiled p50 as a
    dashed line."""
    by_type = ops.groupby("op_type", sort=False)["ms_per_run"].sum().sort_values(ascending=False, kind="stable")
    category = ops.drop_duplicates("op_type").set_index("op_type")["category"]
    segments = [(str(t), float(ms), category.get(t) in OVERHEAD_CATEGORIES) for t, ms in by_type.head(top).items()]
    if len(by_type) > top:
        segments.append((f"other ({len(by_type) - top} op types)", float(by_type.iloc[top:].sum()), False))
    total = sum(ms for _, ms, _ in segments)
    fig = Figure(figsize=(9.0, 1.3 + 0.25 * ((len(segments) + 2) // 3)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(top)] + ["#bbbbbb"]
    left, handles = 0.0, list[Any]()
    for (name, ms, overhead), color in zip(segments, colors):
        share = ms / total * 100 if total else 0.0
        bar = ax.barh(
            0,
            ms,
            left=left,
            color=color,
            hatch="//" if overhead else None,
            edgecolor="white",
            label=f"{name} {ms_text(ms)} ms ({share:.0f}%)",
        )
        handles.append(bar)
        left += ms
    if p50_ms is not None:
        handles.append(
            ax.axvline(
                p50_ms, color="#222", linestyle="--", linewidth=1.2, label=f"p50 unprofiled {ms_text(p50_ms)} ms"
            )
        )
    ax.set_yticks([])
    ax.set_xlim(0, max(total, p50_ms or 0.0) * 1.02 or 1.0)
    ax.set_xlabel("ms per model call (profiled pass); hatched: quantize / dequantize / requantize / reorder")
    ax.set_title(title, fontsize="medium")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, frameon=False, fontsize="small")
    return fig


def figure_path(run_dir: Path, cell: Cell) -> Path:
    """figures/profile_<suite>_<model>_<backend>-<precision>_<device>_b<batch>.png."""
    name = figure_name(
        "profile", cell.suite, cell.model, f"{cell.backend}-{cell.precision}", cell.device, f"b{cell.batch_size}"
    )
    return run_dir / "figures" / f"{name}.png"


def profile_figure_paths(run_dir: Path) -> list[Path]:
    """The op-type figures report.html draws for this run's profiled cells (those on disk)."""
    profile = read_profile(run_dir)
    if profile is None:
        return []
    return [p for p in (figure_path(run_dir, cell) for cell in cell_profiles(profile)) if p.is_file()]


def draw_cell_figure(run_dir: Path, cell: Cell, ops: pd.DataFrame, p50_ms: float | None) -> Path:
    """A cell's op-type bar, saved to `figure_path` (report.html embeds it; slides and PRs take the file)."""
    fig = op_type_chart(ops, f"{cell_name(cell, with_setting=True)}: time per run by op type", p50_ms)
    return save_figure(fig, figure_path(run_dir, cell))
