"""The share-of-peak section of report.md and report.html: a table of each measured row's MACs, intensity,
achieved rate and share of its precision's measured peak, the machine's peaks (env.json `peaks`), and the
roofline chart (figures/roofline.png, embedded in report.html). The section's words are
bench/report/sections.py's `ROOFLINE`."""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from bench.report.charts import cell_labels, png_uri
from bench.report.figures import save_figure
from bench.report.sections import ROOFLINE

FIGURE = Path("figures") / "roofline.png"
COLORS = {"fp32": "#1f6fb4", "int8": "#e07b00", "bf16": "#2ca02c", "fp16": "#9467bd"}
HEADERS = ("cell", "GMAC/image", "MAC/byte", "GMAC/s", "% of peak", "against", "uncounted nodes", "status")


def _measured(env: Mapping[str, Any]) -> Mapping[str, Any]:
    peaks = env.get("peaks")
    found = peaks.get("measured") if isinstance(peaks, Mapping) else None
    return found if isinstance(found, Mapping) and found.get("status") == "ok" else {}


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with a roofline: measured, their graph counted."""
    if "gmac_per_image" not in df or "status" not in df:
        return df.iloc[:0]
    return df[(df["status"] == "ok") & df["gmac_per_image"].notna()]


def _number(value: Any, fmt: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def table_cells(df: pd.DataFrame) -> list[list[str]]:
    """One line per row with a roofline, as `HEADERS` names them."""
    rows = _rows(df)
    return [
        [
            label,
            _number(row.get("gmac_per_image"), "{:.3f}"),
            _number(row.get("roofline_mac_per_byte"), "{:.1f}"),
            _number(row.get("achieved_gmacs"), "{:.1f}"),
            _number(row.get("pct_of_peak"), "{:.1f}"),
            str(row.get("roofline_peak") or ""),
            f"{_number(row.get('roofline_uncounted_nodes_pct'), '{:.0f}')}%: {row.get('roofline_uncounted_ops') or ''}",
            str(row.get("roofline_status") or ""),
        ]
        for label, (_, row) in zip(cell_labels(rows), rows.iterrows())
    ]


def peak_lines(env: Mapping[str, Any]) -> list[str]:
    """The machine's measured peaks and the theoretical ones beside them, one line each."""
    found = env.get("peaks")
    peaks: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    measured, theoretical = peaks.get("measured") or {}, peaks.get("theoretical") or {}
    lines = []
    if measured.get("status") == "ok":
        found = ", ".join(f"{p} {v:.0f}" for p, v in (measured.get("gmacs") or {}).items())
        missing = "".join(f"; no {p} peak: {why}" for p, why in (measured.get("missing") or {}).items())
        bandwidth = measured.get("bandwidth_gbs")
        lines.append(
            f"Measured on {measured.get('threads')} thread(s), {measured.get('measured_at')}: GEMM GMAC/s {found}"
            + (f"; streaming copy {bandwidth:.1f} GB/s" if bandwidth else "")
            + f"{missing} ({measured.get('method')})"
        )
    elif measured:
        lines.append(f"No measured peaks: {str(measured.get('status')).removeprefix('unavailable: ')}")
    if isinstance(theoretical, Mapping) and theoretical.get("precisions"):
        parts = []
        for precision, entry in theoretical["precisions"].items():
            gmacs = entry.get("gmacs")
            rate = f"{gmacs:.0f} GMAC/s" if gmacs is not None else "unknown GMAC/s"
            parts.append(
                f"{precision} {rate} ({entry.get('isa')}, {entry.get('macs_per_cycle_per_core', '?')} MAC/cycle/core)"
            )
        lines.append(
            f"Theoretical on {theoretical.get('physical_cores')} core(s) at {theoretical.get('mhz')} MHz "
            f"({theoretical.get('frequency_source')}): {'; '.join(parts)}; {theoretical.get('assumption')}"
        )
    return lines


def roofline_chart(df: pd.DataFrame, env: Mapping[str, Any]) -> Figure | None:
    """Log-log: each row at its intensity (MAC per byte the counted ops move) and achieved GMAC/s, under
    the measured peak of each precision and the streaming copy's bandwidth slope (GB/s x MAC/byte)."""
    needed = ["roofline_mac_per_byte", "achieved_gmacs"]
    if not set(needed) <= set(df.columns):
        return None
    rows = _rows(df).dropna(subset=needed)
    rows = rows[(rows["roofline_mac_per_byte"] > 0) & (rows["achieved_gmacs"] > 0)]
    if rows.empty:
        return None
    measured = _measured(env)
    peaks = {p: float(v) for p, v in (measured.get("gmacs") or {}).items()}
    bandwidth = measured.get("bandwidth_gbs")
    x_low, x_high = rows["roofline_mac_per_byte"].min() / 4, rows["roofline_mac_per_byte"].max() * 4
    if bandwidth:
        x_low = min(x_low, min(peaks.values(), default=x_high) / bandwidth / 4)
        x_high = max(x_high, max(peaks.values(), default=x_low) / bandwidth * 2)
    xs = [x_low * (x_high / x_low) ** (i / 200) for i in range(201)]
    fig = Figure(figsize=(9.0, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for precision, peak in peaks.items():
        roof = [min(peak, bandwidth * x) if bandwidth else peak for x in xs]
        ax.plot(
            xs, roof, color=COLORS.get(precision, "#555"), linewidth=1.5, label=f"{precision} peak {peak:.0f} GMAC/s"
        )
    if bandwidth:
        ax.plot(
            xs,
            [bandwidth * x for x in xs],
            color="#888",
            linestyle=":",
            linewidth=1,
            label=f"copy {bandwidth:.1f} GB/s",
        )
    seen: set[str] = set()
    for label, (_, row) in zip(cell_labels(rows), rows.iterrows()):
        x, y, precision = float(row["roofline_mac_per_byte"]), float(row["achieved_gmacs"]), str(row["precision"])
        legend = f"{precision} rows" if precision not in seen else None
        seen.add(precision)
        ax.scatter([x], [y], s=50, zorder=3, color=COLORS.get(precision, "#555"), label=legend)
        ax.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize="small")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_low, x_high)
    bottoms = [float(rows["achieved_gmacs"].min()), *([bandwidth * x_low] if bandwidth else [])]
    ax.set_ylim(min(bottoms) / 2, max([*peaks.values(), *rows["achieved_gmacs"]]) * 2)  # the slope's far end off
    ax.set(
        xlabel="arithmetic intensity (MAC per byte the counted ops move, at the row's precision and batch)",
        ylabel="achieved GMAC/s (at the p50 latency)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def write_roofline_figure(run_dir: Path, df: pd.DataFrame, env: Mapping[str, Any]) -> list[Path]:
    """figures/roofline.png, for report.md and for slides; an older one goes when the run has no roofline."""
    path = run_dir / FIGURE
    fig = roofline_chart(df, env)
    if fig is None:
        path.unlink(missing_ok=True)
        return []
    return [save_figure(fig, path)]


def markdown_section(run_dir: Path, df: pd.DataFrame, env: Mapping[str, Any]) -> list[str]:
    """report.md's section (none for a run whose rows have no roofline columns)."""
    cells = table_cells(df)
    if not cells:
        return []
    figure = [f"![{ROOFLINE.title}]({FIGURE.as_posix()})", ""] if (run_dir / FIGURE).is_file() else []
    return [
        f"## {ROOFLINE.title}",
        "",
        *textwrap.wrap(ROOFLINE.intro, 100),
        "",
        tabulate(cells, headers=HEADERS, tablefmt="github", disable_numparse=True),
        "",
        *textwrap.wrap(ROOFLINE.legend, 100),
        "",
        *(f"- {line}" for line in peak_lines(env)),
        "",
        *figure,
    ]


def html_section(df: pd.DataFrame, env: Mapping[str, Any]) -> str | None:
    """report.html's section body (the chart embedded), None without roofline rows."""
    cells = table_cells(df)
    if not cells:
        return None
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    fig = roofline_chart(df, env)
    image = (
        f'<img class="figure" src="{png_uri(fig)}" alt="Roofline: achieved GMAC/s against MAC per byte per backend">'
        if fig is not None
        else ""
    )
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in peak_lines(env))
    table = f'<table id="roofline"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return (
        f'<p class="note">{html.escape(ROOFLINE.intro)}</p><div class="table-wrap">{table}</div>'
        f'<p class="note">{html.escape(ROOFLINE.legend)}</p><ul>{lines}</ul>{image}'
    )
