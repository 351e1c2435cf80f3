"""Self-contained HTML report of a run: figures are base64 PNGs and the CSS is inline, so report.html
can be attached to a CI job or mailed, and opens without the run folder or any network access. The sections'
words are bench/report/sections.py's, as report.md's are."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.charts import (
    cell_labels,
    dice_box_figure,
    drift_figure,
    latency_figure,
    png_file_uri,
    size_figure,
)
from bench.report.decision import ReportedDecision
from bench.report.decision import html_section as decision_html
from bench.report.profile_report import html_sections as profile_sections
from bench.report.roofline import html_section as roofline_html
from bench.report.sections import (
    CELLS_WITHOUT_RESULTS,
    DECISION,
    ENVIRONMENT,
    GRADCAM,
    NOISY,
    ROOFLINE,
    STAGE_FAILURES,
    SUMMARY,
    SWEEP,
)
from bench.report.sweep import html_section as sweep_html
from bench.report.tables import (
    SUMMARY_COLUMNS,
    environment_lines,
    gradcam_status_lines,
    gradcam_table,
    noisy_lines,
    stage_failure_lines,
    status_kind,
    summary_cells,
)
from bench.results.files import read_json, read_results, read_table

CSS = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.8em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; white-space: nowrap; } th { background: #f0f0f0; }
th, #summary td.text { white-space: normal; } td.num { text-align: right; }
tr.status-details td { white-space: normal; border-top: none; color: #555; }
.reason { margin: 0.2em 0 0.4em; white-space: pre-wrap; overflow-wrap: anywhere; }
.table-wrap { overflow-x: auto; } .note { color: #555; font-size: 0.9em; }
img.figure { display: block; max-width: 100%; height: auto; margin: 0.5em 0 1.5em; }
table.decision td.text { white-space: normal; min-width: 28em; } tr.recommended td { background: #e8f5e9; }
p.headline { font-size: 1.1em; margin: 0.8em 0 0.3em; }"""
NUMERIC = set(SUMMARY_COLUMNS) - {"suite", "model", "backend", "precision", "device", "status", "timing_quality"}
# Counts the images the browser really decoded; the browser test reads the attribute back from the DOM.
IMAGE_CHECK = (
    "<script>window.addEventListener('load', () => { document.body.dataset.imagesLoaded = "
    "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });</script>"
)


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
        (
            "Latency per backend",
            latency_figure(ok),
            "Horizontal bars of p50 latency per backend, whiskers to p99, red tick at p90",
        ),
        ("Model size per backend", size_figure(ok), "Horizontal bars of model size on disk in MiB per backend"),
        (
            "Accuracy drift vs latency",
            drift_figure(ok),
            "Accuracy drift against p50 latency per backend; Pareto-optimal backends filled and joined by a step line",
        ),
        (
            "Per-image Dice",
            dice_box_figure(read_table(per_image), ok) if per_image.exists() else None,
            "Box chart of per-image foreground Dice per backend",
        ),
    ]
    sections = [_section(title, _img(uri, alt)) for title, uri, alt in figures if uri]
    if gradcams := sorted((run_dir / "figures").glob("gradcam_*.png")):
        sections.append(
            _section(
                "Grad-CAM",
                "\n".join(
                    _img(png_file_uri(p), f"Grad-CAM montage {p.stem.removeprefix('gradcam_')}") for p in gradcams
                ),
            )
        )
    return sections


def _status_list(df: pd.DataFrame) -> str:
    """Cells without numbers, each with its reason: a failed backend must not vanish from the report."""
    bad = df[df["status"] != "ok"]
    items = "".join(
        f"<li><b>{html.escape(label)}</b>: {html.escape(str(status))}</li>"
        for label, status in zip(cell_labels(bad), bad["status"])
    )
    return f"<ul>{items}</ul>" if len(bad) else f"<p>{html.escape(CELLS_WITHOUT_RESULTS.nothing)}</p>"


def summary_html(df: pd.DataFrame) -> str:
    """The summary table, numbers first: a status cell holds its kind only (ok, unavailable, error), and
    the reason goes to a details row under it, so a long error never widens the table."""
    columns, body = summary_cells(df)
    head = "".join(f"<th>{html.escape(SUMMARY_COLUMNS[c])}</th>" for c in columns)
    rows = []
    for label, status, cells in zip(cell_labels(df), df.get("status", [""] * len(df)), body):
        kind = status_kind(status)
        tds = "".join(
            f'<td title="{html.escape(str(status))}">{html.escape(kind)}</td>'
            if c == "status"
            else f'<td class="{"num" if c in NUMERIC else "text"}">{html.escape(v)}</td>'
            for c, v in zip(columns, cells)
        )
        rows.append(f"<tr>{tds}</tr>")
        if reason := str(status)[len(kind) :].lstrip(": ").strip():
            preview = reason if len(reason) <= 90 else reason[:90].rstrip() + "…"
            rows.append(
                f'<tr class="status-details"><td colspan="{len(columns)}"><details>'
                f"<summary>{html.escape(label)}: {html.escape(kind)}: {html.escape(preview)}</summary>"
                f'<p class="reason">{html.escape(reason)}</p></details></td></tr>'
            )
    return f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _noisy(df: pd.DataFrame) -> list[str]:
    """The rows timed on a busy or slow machine, with the reasons: marked NOISY in the table above."""
    lines = noisy_lines(df)
    if not lines:
        return []
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return [_section(NOISY.title, f'<p class="note">{html.escape(NOISY.lead)}.</p><ul>{items}</ul>')]


def _stage_failures(df: pd.DataFrame) -> list[str]:
    """The stages that failed in rows whose other numbers stand, each with its cause."""
    lines = stage_failure_lines(df)
    if not lines:
        return []
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return [_section(STAGE_FAILURES.title, f'<p class="note">{html.escape(STAGE_FAILURES.intro)}</p><ul>{items}</ul>')]


def _gradcam(df: pd.DataFrame) -> list[str]:
    """Each backend's Grad-CAM divergence beside its method's own floor, and the maps not to be trusted."""
    table = gradcam_table(df, fmt="html")
    if not table:
        return []
    marked = "".join(f"<li>{html.escape(line)}</li>" for line in gradcam_status_lines(df))
    body = f'<div class="table-wrap">{table}</div>\n<p class="note">{html.escape(GRADCAM.legend)}</p>'
    if marked:
        body += f'<p class="note">{html.escape(GRADCAM.lead)}:</p><ul>{marked}</ul>'
    return [_section(GRADCAM.title, body)]


def render_html(run_dir: Path, df: pd.DataFrame, env: dict[str, Any], decided: ReportedDecision | None = None) -> str:
    """The whole page as one string; the decision first (made here from the folder when not given)."""
    decided = decided if decided is not None else ReportedDecision.of(run_dir, df)
    table, legend = summary_html(df), html.escape(SUMMARY.legend)
    roofline, sweep = roofline_html(df, env), sweep_html(df)
    env_items = "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in environment_lines(env))
    title = f"segbench run {html.escape(run_dir.name)}"
    return "\n".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<h1>{title}</h1>",
            _section(DECISION.title, decision_html(decided.decision, decided.sinks)),
            _section(SUMMARY.title, f'<div class="table-wrap">{table}</div>\n<p class="note">{legend}</p>'),
            *_stage_failures(df),
            *_noisy(df),
            *_gradcam(df),
            *_figures(run_dir, df),
            *(_section(title, body) for title, body in profile_sections(run_dir, df)),  # only with profile.parquet
            *([_section(SWEEP.title, sweep)] if sweep else []),
            *([_section(ROOFLINE.title, roofline)] if roofline else []),
            _section(CELLS_WITHOUT_RESULTS.title, _status_list(df)),
            _section(ENVIRONMENT.title, f"<ul>{env_items}</ul>"),
            IMAGE_CHECK,
            "</body></html>\n",
        ]
    )


def write_html(run_dir: Path, decided: ReportedDecision | None = None) -> Path:
    """Write run_dir/report.html from the run folder's own files, so `segbench report DIR` can redo it."""
    df = read_results(run_dir)
    env_path = run_dir / "env.json"
    env = read_json(env_path) if env_path.exists() else {}
    path = run_dir / "report.html"
    path.write_text(render_html(run_dir, df, env, decided), encoding="utf-8")
    return path
