"""Every report file of a run folder, written from the folder's own tables, so `segbench report DIR`
can redo them: decision.json, report.md, report.html (figures embedded), figures/dice_box.png,
figures/roofline.png (rows with a share of peak), figures/sweep_*.png (a shape sweep) and, for a profiled run,
figures/profile_*.png."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.charts import dice_box_chart
from bench.report.decision import ReportedDecision, write_decision
from bench.report.figures import save_figure
from bench.report.html import write_html
from bench.report.markdown import write_markdown
from bench.report.profile_chart import profile_figure_paths
from bench.report.roofline import write_roofline_figure
from bench.report.sweep import write_sweep_figures
from bench.results.files import read_json, read_results, read_table


def write_reports(run_dir: Path) -> list[Path]:
    """decision.json, report.md, report.html, figures/dice_box.png and figures/roofline.png from the run
    folder's results; with a profile.parquet, report.html also draws figures/profile_*.png (one per
    profiled cell)."""
    df = read_results(run_dir)
    decided = ReportedDecision.of(run_dir, df)
    env_path = run_dir / "env.json"
    roofline = write_roofline_figure(
        run_dir, df, read_json(env_path) if env_path.exists() else {}
    )  # report.md links it
    return [
        *roofline,
        *write_sweep_figures(run_dir, df),  # report.md links them too
        write_decision(run_dir, decided.decision),
        write_markdown(run_dir, df, decided),
        write_html(run_dir, decided),
        *profile_figure_paths(run_dir),
        *write_dice_box(run_dir, df),
    ]


def write_dice_box(run_dir: Path, df: pd.DataFrame) -> list[Path]:
    """figures/dice_box.png: the per-image Dice box chart per backend, as a file for slides and PRs."""
    per_image = run_dir / "per_image.parquet"
    if not per_image.exists() or "status" not in df:
        return []
    fig = dice_box_chart(read_table(per_image), df[df["status"] == "ok"])
    return [save_figure(fig, run_dir / "figures" / "dice_box.png")] if fig is not None else []
