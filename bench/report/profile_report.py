"""The profiles in report.md and report.html: the section's words are bench/report/sections.py's
`PROFILES`, the findings' lines bench/report/profile_text.py's, both rendered here from the same tables
(bench/report/profile_analysis.py). report.md lists the int8 cells that are not faster and points at
report.html, which adds per group the overhead buckets, the layers not faster in int8 and every layer,
and per cell its op-type bar (bench/report/profile_chart.py) and slowest layers.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.charts import png_file_uri
from bench.report.profile_analysis import (
    BUCKETS,
    PROFILE_FILE,
    TOP_LAYERS,
    UNATTRIBUTED,
    Cell,
    attribution_tables,
    cell_profiles,
    counterparts,
    not_faster_layers,
    numeric,
    ordered_cells,
    read_profile,
    result_rows,
    top_layers,
)
from bench.report.profile_chart import draw_cell_figure
from bench.report.profile_text import cell_name, not_faster_lines
from bench.report.sections import PROFILES


def markdown_section(run_dir: Path, results: pd.DataFrame) -> list[str]:
    """report.md's "Profiles" lines; none for a run without profile.parquet."""
    profile = read_profile(run_dir)
    if profile is None:
        return []
    lines = not_faster_lines(profile, results)
    return [
        f"## {PROFILES.title}",
        "",
        PROFILES.intro.format(cells=len(cell_profiles(profile)), file=PROFILE_FILE),
        "",
        *([f"{PROFILES.lead}:", "", *(f"- {line}" for line in lines)] if lines else [PROFILES.nothing]),
        "",
    ]


# ---------------------------------------------------------------------------------------------------
# report.html


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    text = "" if value is None or pd.isna(value) else fmt.format(value)
    return f'<td class="num">{text}</td>'


def _text(value: Any) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _table(head: list[str], rows: list[str], table_id: str = "") -> str:
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    ident = f' id="{table_id}"' if table_id else ""
    return (
        f'<div class="table-wrap"><table{ident}><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(f'<tr>{r}</tr>' for r in rows)}</tbody></table></div>"
    )


def _honesty(results: pd.DataFrame, profiled: Collection[Cell]) -> str:
    """Per cell: the profile's own cost and coverage against the unprofiled p50 (results' profile_*)."""
    rows, missing = [], []
    for cell, row in result_rows(results).items():
        status = row.get("profile_status")
        if cell not in profiled:
            if row.get("status") == "ok":
                missing.append(
                    f"<li><b>{html.escape(cell_name(cell))}</b>: {html.escape(str(status or 'not profiled'))}</li>"
                )
            continue
        rows.append(
            _text(cell_name(cell, with_setting=True))
            + _num(numeric(row, "latency_p50_ms"))
            + _num(numeric(row, "profile_ms_per_run"))
            + _num(numeric(row, "profile_overhead_pct"), "{:+.1f}")
            + _num(numeric(row, "profile_ops_ms_per_run"))
            + _num(numeric(row, "profile_ops_vs_p50_pct"), "{:.1f}")
            + _num(numeric(row, "profile_layer_attributed_pct"), "{:.1f}")
            + _num(numeric(row, "profile_qdq_reorder_pct"), "{:.1f}")
            + _text(row.get("profile_method") or "")
        )
    head = [
        "cell",
        "p50 ms",
        "profiled ms/run",
        "profiler overhead % (vs p50)",
        "ops ms/run",
        "ops % of p50",
        "layer-attributed % of ops",
        "q/dq/requant/reorder % of ops",
        "profiler",
    ]
    body = _table(head, rows, "profile-honesty") if rows else ""
    if missing:
        body += f'<p class="note">Cells that ran without a profile:</p><ul>{"".join(missing)}</ul>'
    return body


def _attribution_html(table: pd.DataFrame, rows: list[tuple[str, str]]) -> str:
    """Rows of the attribution table (given as (kind, item)) as HTML, ms per run, "—" where missing."""
    out = []
    for key in rows:
        kind, item = key
        name = item if kind == "layer" else "unattributed compute" if kind == UNATTRIBUTED else f"{kind} ops"
        out.append(_text(name) + "".join(_num(v) if pd.notna(v) else '<td class="num">—</td>' for v in table.loc[key]))
    return _table(["ms per run", *table.columns], out)


def _buckets_html(table: pd.DataFrame) -> str:
    rows = [(b, b) for b in BUCKETS]
    body = _attribution_html(table, rows)
    totals = "<tr>" + _text("total profiled ops") + "".join(_num(v) for v in table.sum(skipna=True)) + "</tr>"
    return body.replace("</tbody>", totals + "</tbody>")


def _not_faster_html(rows: pd.DataFrame, compared: bool) -> str:
    """The not-faster layers of one group (`not_faster_layers`); `compared`: an int8 cell of the group
    has a profiled float counterpart (else there was nothing to compare)."""
    if rows.empty:
        return (
            '<p class="note">None: every layer both profiles name is faster in int8.</p>'
            if compared
            else '<p class="note">None compared: no int8 cell here has a profiled float counterpart.</p>'
        )
    body = [
        _text(r.layer)
        + _text(r.int8)
        + _num(r.int8_ms)
        + _text(r.float)
        + _num(r.float_ms)
        + _num(r.ratio, "{:.2f}x")
        + _text(", ".join(v for v in (r.op_types, r.precisions) if v))
        for r in rows.itertuples()
    ]
    return _table(["layer", "int8 cell", "int8 ms/run", "float counterpart", "float ms/run", "ratio", "int8 ops"], body)


def _embedded(path: Path, alt: str) -> str:
    return f'<img class="figure" src="{png_file_uri(path)}" alt="{html.escape(alt)}">'


def _cell_html(run_dir: Path, cell: Cell, ops: pd.DataFrame, row: Mapping[str, Any] | None) -> str:
    """A cell's <details>: its op-type bar (also saved under figures/) and its slowest layers."""
    p50 = numeric(row, "latency_p50_ms")
    total = float(ops["ms_per_run"].sum())
    path = draw_cell_figure(run_dir, cell, ops, p50)
    layers = top_layers(ops)
    table = (
        _table(
            ["layer", "ms/run", "% of profiled ops", "precision(s)", "op types"],
            [
                _text(r.layer)
                + _num(r.ms_per_run)
                + _num(r.share_pct, "{:.1f}")
                + _text(r.precisions)
                + _text(r.op_types)
                for r in layers.itertuples()
            ],
        )
        if len(layers)
        else '<p class="note">The profiler named no layer for this cell.</p>'
    )
    summary = f"{cell.label}: {total:.3f} ms/run in profiled ops" + (f" (p50 {p50:.3f} ms)" if p50 is not None else "")
    return (
        f"<details><summary>{html.escape(summary)}</summary>\n"
        f"{_embedded(path, f'Stacked bar of {cell_name(cell)} time per run by op type')}\n"
        f'<p class="note">Slowest {TOP_LAYERS} layers (compute ops):</p>{table}</details>'
    )


def html_sections(run_dir: Path, results: pd.DataFrame) -> list[tuple[str, str]]:
    """report.html's profile section as (title, body HTML); none for a run without profile.parquet.
    Draws each profiled cell's op-type bar to figures/ (`profile_chart.figure_path`) and embeds it."""
    profile = read_profile(run_dir)
    if profile is None:
        return []
    profiles = cell_profiles(profile)
    rows = result_rows(results)
    pairs = counterparts(results)
    tables = attribution_tables(profile, results)
    slower = not_faster_layers(profile, results)
    lines = not_faster_lines(profile, results)
    parts = [
        # the words are written HTML-safe: only the file's name is markup here
        f'<p class="note">{PROFILES.page_intro.format(file=f"<code>{PROFILE_FILE}</code>")}</p>',
        "<h3>What the profiles can be trusted for</h3>",
        _honesty(results, profiles),
    ]
    if lines:
        parts.append(
            f'<p class="note">{html.escape(PROFILES.lead)}:</p><ul>'
            + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
            + "</ul>"
        )
    for group, table in tables.items():
        suite, model, device, batch, size = group
        layer_rows = [key for key in table.index if key[0] == "layer"]
        mine = slower[
            (slower["suite"] == suite)
            & (slower["model"] == model)
            & (slower["device"] == device)
            & (slower["batch_size"] == batch)
            & (slower["input_size"] == size)
        ]
        where = f"{device}, batch {batch}" + (f", {size}" if size else "")
        parts += [
            f"<h3>{html.escape(f'{suite} / {model} ({where})')}</h3>",
            '<p class="note">Overhead buckets and unattributed compute, ms per run:</p>',
            _buckets_html(table),
            '<p class="note">Layers whose int8 time is not lower than their float counterpart\'s:</p>',
            _not_faster_html(
                mine, compared=any(c.group == group and c in profiles and f in profiles for c, f in pairs.items())
            ),
            f"<details><summary>Every layer ({len(layer_rows)}) across the cells, ms per run</summary>"
            f"{_attribution_html(table, layer_rows)}</details>",
            *(
                _cell_html(run_dir, cell, profiles[cell], rows.get(cell))
                for cell in ordered_cells([c for c in profiles if c.group == group], pairs)
            ),
        ]
    return [(PROFILES.html_title, "\n".join(parts))]
