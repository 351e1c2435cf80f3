"""`segbench history`'s outputs: a Markdown summary (changes newest first, with the commits on either
side) and a self-contained HTML page with one small trend chart per cell and metric that changed."""

from __future__ import annotations

import html
from collections import defaultdict

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from bench.report.charts import png_uri
from bench.report.history import (
    CHANGE_POINT_METHOD,
    LATENCY,
    LATENCY_SPREAD_FACTOR,
    Change,
    History,
    Series,
)
from bench.results.columns import thresholds_text

CSS = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.8em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; } th { background: #f0f0f0; }
.note { color: #555; font-size: 0.9em; } .charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.8em; max-width: 420px; }
img.trend { display: block; width: 420px; height: auto; }"""


def method_lines(history: History) -> list[str]:
    """How the changes were found, with the thresholds this history gave."""
    spreads = ", ".join(f"{machine}: {100 * sigma:.1f}%" for machine, sigma in history.latency_spread.items())
    return [
        f"- change points: {CHANGE_POINT_METHOD}; latency segmented in log space and reported only above "
        f"{LATENCY_SPREAD_FACTOR:g}x the run-to-run spread of this history "
        f"(one sigma per machine: {spreads or 'n/a'}); "
        "a latency change is confirmed only by a quietly timed point at the new level (timing_quality ok); "
        "an unconfirmed one is listed but never makes the exit code 1",
        "- quality, drift, agreement, boundary, per-class, SQNR and Grad-CAM columns: changes of at least "
        f"their threshold ({thresholds_text(history.quality_threshold)}; absolute"
        + (", --quality-threshold for every score column" if history.quality_threshold is not None else "")
        + "); Grad-CAM only for the newest run's method and valid maps",
    ]


def _run_line(history: History, index: int) -> str:
    run = history.runs[index]
    return f"{run.date:%Y-%m-%d %H:%M} {run.short_commit} ({run.path.name})"


def change_rows(history: History, changes: list[Change]) -> list[list[str]]:
    return [
        [
            _run_line(history, c.first_run),
            c.series.label,
            c.series.metric,
            c.describe(),
            "worse" if c.worse else "better",
            c.kind if c.confirmed else f"{c.kind}, unconfirmed: noisy timing only",
            f"{history.runs[c.previous_run].short_commit}..{history.runs[c.first_run].short_commit}",
        ]
        for c in changes
    ]


CHANGE_HEADERS = ["first run", "cell", "metric", "change", "direction", "kind", "commits"]


def to_markdown(history: History, recent: int) -> str:
    runs = history.runs
    machines = sorted({r.machine_label for r in runs})
    lines = [
        "# segbench history",
        "",
        f"- results root: `{history.root}`",
        f"- {len(runs)} runs from {runs[0].date:%Y-%m-%d %H:%M} to {runs[-1].date:%Y-%m-%d %H:%M} UTC, "
        f"{len(machines)} machine(s): {'; '.join(machines)}",
        f"- {sum(len(s.values) >= 2 for s in history.series)} series (cell x metric with at least two valid runs)",
        *method_lines(history),
        "",
    ]
    recent_changes = history.recent_changes(recent)
    lines += [
        f"## Confirmed changes in the newest {recent} runs: {len(recent_changes)}",
        "",
        "## Changes, newest first",
        "",
    ]
    if history.changes:
        lines.append(tabulate(change_rows(history, list(history.changes)), CHANGE_HEADERS, tablefmt="github"))
    else:
        lines.append("none")
    left_out = [s for s in history.series if s.left_out]
    if left_out:
        lines += ["", "## Points left out", ""]
        lines += [f"- {s.label} {s.metric}: {s.left_out} (invalid or other-method maps)" for s in left_out]
    return "\n".join(lines) + "\n"


def trend_chart(history: History, series: Series, changes: list[Change]) -> str:
    """A small chart of one series: its points, each segment's level, and a dashed line at each change."""
    fig = Figure(figsize=(4.2, 2.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.asarray(series.runs)
    ax.plot(x, series.values, "o-", color="#4477aa", markersize=3, linewidth=1)
    bounds = [0, *(c.position for c in changes), len(x)]
    levels = [changes[0].before, *(c.after for c in changes)] if changes else []
    for (start, end), level in zip(zip(bounds, bounds[1:]), levels):
        ax.hlines(level, x[start], x[end - 1], color="#cc6677", linewidth=1.5)
    for change in changes:
        ax.axvline(change.first_run - 0.5, color="#cc6677", linestyle="--", linewidth=1)
    ticks = sorted(set(x.tolist()))
    ax.set_xticks(ticks, [history.runs[i].date.strftime("%m-%d") for i in ticks], fontsize=6, rotation=45)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("p50 ms" if series.metric == LATENCY else series.metric, fontsize=7)
    ax.set_title(f"{series.label}\n{series.metric}", fontsize=7)
    fig.tight_layout()
    return png_uri(fig)


def to_html(history: History, recent: int) -> str:
    by_series: dict[Series, list[Change]] = defaultdict(list)
    for change in history.changes:
        by_series[change.series].append(change)
    charts = []
    for series, changes in by_series.items():
        changes = sorted(changes, key=lambda c: c.position)
        caption = "; ".join(f"{_run_line(history, c.first_run)}: {c.describe()} ({c.kind})" for c in changes)
        charts.append(
            f'<figure><img class="trend" src="{trend_chart(history, series, changes)}" '
            f'alt="{html.escape(series.label + " " + series.metric)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    rows = change_rows(history, list(history.changes))
    table = tabulate(rows, CHANGE_HEADERS, tablefmt="html") if rows else "<p>No change points.</p>"
    notes = "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in method_lines(history))
    runs = "".join(f"<li>{html.escape(_run_line(history, i))}</li>" for i in range(len(history.runs)))
    recent_count = len(history.recent_changes(recent))
    return "\n".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>segbench history</title>',
            f"<style>{CSS}</style></head><body>",
            f"<h1>segbench history of {html.escape(str(history.root))}</h1>",
            f"<p>{len(history.runs)} runs; {len(history.changes)} change points, {recent_count} confirmed in the "
            f"newest {recent} runs.</p>",
            f'<ul class="note">{notes}</ul>',
            "<h2>Changes, newest first</h2>",
            table,
            "<h2>Trends that changed</h2>",
            f'<div class="charts">{"".join(charts) or "<p>None.</p>"}</div>',
            f"<h2>Runs</h2><ul>{runs}</ul>",
            "</body></html>\n",
        ]
    )
