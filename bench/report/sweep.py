"""The shape-sweep section of report.md and report.html (`segbench run --input-sizes ... --batch-sizes ...`,
docs/sweeps.md): per suite and model, how each backend's latency grows with the pixels of its input (a
log-log fit's exponent), how its speedup over fp32 eager changes with resolution, how its memory grows
with the batch, and where an int8 backend stops paying. One figure per suite and model,
figures/sweep_<suite>_<model>.png, three charts side by side. The section's words are
bench/report/sections.py's `SWEEP`.

Why a fitted exponent: latency against pixels on log-log axes is close to a line for a convolutional
network, and its slope says what a deployment at another resolution costs (1.0: time grows with the
pixels; below 1: a fixed cost per call is being spread; above 1: something grows faster than the
image, e.g. caches overflowing). It is fitted on each backend's p50 at the smallest batch size of the
run, only where the backend has at least two sizes."""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from bench.report.charts import png_uri
from bench.report.figures import figure_name, save_figure
from bench.report.sections import SWEEP
from bench.results.speedup import REFERENCE

NEEDED = ("input_height", "input_width", "batch_size", "latency_p50_ms")


@dataclass(frozen=True)
class SweptPair:
    """One suite and model of a run whose rows differ in input size or batch size."""

    suite: str
    model: str
    rows: pd.DataFrame  # its measured rows, with `pixels` and `shape` ("512x512 b1") added

    @property
    def batches(self) -> list[int]:
        return sorted(int(b) for b in self.rows["batch_size"].unique())

    @property
    def smallest_batch(self) -> pd.DataFrame:
        return self.rows[self.rows["batch_size"] == self.batches[0]]

    @property
    def own_size(self) -> pd.DataFrame:
        """The rows at the suite's own input size (`input_size` empty): the memory-against-batch chart's."""
        return self.rows[self.rows["input_size"].fillna("") == ""]

    def exponents(self) -> dict[str, float]:
        """Backend label -> the slope of log p50 against log pixels at the smallest batch (two sizes or more)."""
        found = {}
        for label, part in self.smallest_batch.groupby("label", sort=False):
            if part["pixels"].nunique() >= 2:
                slope = np.polyfit(np.log(part["pixels"].astype(float)), np.log(part["latency_p50_ms"]), 1)[0]
                found[str(label)] = float(slope)
        return found

    def where_int8_stops_paying(self) -> list[str]:
        """A line per int8 backend: the shapes where its speedup over fp32 eager is not above 1 (its 95%
        interval's low end where the row has one), or that it pays at every shape, with its smallest speedup."""
        lines = []
        for label, part in self.rows[self.rows["precision"] == "int8"].groupby("label", sort=False):
            part = part.dropna(subset=["speedup_vs_fp32"])
            if part.empty:
                continue
            low = part["speedup_vs_fp32_ci_low"] if "speedup_vs_fp32_ci_low" in part else part["speedup_vs_fp32"]
            low = low.fillna(part["speedup_vs_fp32"])
            worst = part.loc[part["speedup_vs_fp32"].idxmin()]
            unpaid = [f"{r.shape} ({r.speedup_vs_fp32:.2f}x)" for r, lo in zip(part.itertuples(), low) if lo <= 1.0]
            if unpaid:
                lines.append(f"{label} does not pay at {', '.join(unpaid)}")
            else:
                lines.append(
                    f"{label} pays at every shape measured; its smallest speedup is {worst['speedup_vs_fp32']:.2f}x "
                    f"at {worst['shape']}"
                )
        return lines


def swept_pairs(df: pd.DataFrame) -> Iterator[SweptPair]:
    """Each suite and model whose measured rows span more than one input size or batch size."""
    if not set(NEEDED) <= set(df.columns) or "status" not in df:
        return
    ok = df[(df["status"] == "ok") & df["latency_p50_ms"].notna() & df["input_height"].notna()].copy()
    if ok.empty:
        return
    ok["pixels"] = ok["input_height"].astype(int) * ok["input_width"].astype(int)
    ok["shape"] = [f"{int(h)}x{int(w)} b{int(b)}" for h, w, b in zip(ok.input_height, ok.input_width, ok.batch_size)]
    ok["label"] = ok["backend"].astype(str) + " " + ok["precision"].astype(str)
    if "input_size" not in ok:
        ok["input_size"] = ""
    for (suite, model), rows in ok.groupby(["suite", "model"], sort=False):
        if rows["shape"].nunique() > 1:
            yield SweptPair(str(suite), str(model), rows)


def sweep_chart(pair: SweptPair) -> Figure:
    """Latency against pixels (log-log, the fitted exponent in the legend), speedup against pixels, memory
    against the batch at the suite's own size."""
    fig = Figure(figsize=(15.0, 4.6))
    FigureCanvasAgg(fig)
    latency, speedup, memory = fig.subplots(1, 3)
    exponents = pair.exponents()
    batch = pair.batches[0]
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(pair.rows["label"]))}
    for label, part in pair.smallest_batch.groupby("label", sort=False):
        part = part.sort_values("pixels")
        slope = exponents.get(str(label))
        legend = f"{label} (k = {slope:.2f})" if slope is not None else str(label)
        latency.plot(part["pixels"], part["latency_p50_ms"], marker="o", label=legend, color=colors[label])
        if (str(part["backend"].iloc[0]), str(part["precision"].iloc[0])) != REFERENCE:
            speedup.plot(part["pixels"], part["speedup_vs_fp32"], marker="o", label=str(label), color=colors[label])
    latency.set(xscale="log", yscale="log", ylabel=f"p50 latency, ms (batch {batch})")
    speedup.axhline(1.0, color="#888", linestyle=":", linewidth=1)
    speedup.set(xscale="log", ylabel=f"speedup vs fp32 eager (batch {batch})")
    sizes = pair.smallest_batch.drop_duplicates("pixels").sort_values("pixels")
    for ax in (latency, speedup):  # each measured size named under its pixels
        ax.set_xticks(sizes["pixels"], [s.split(" ")[0] for s in sizes["shape"]], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("input size (log of its pixels)")
    own = pair.own_size.dropna(subset=["backend_rss_mib"]) if "backend_rss_mib" in pair.rows else pair.rows.iloc[:0]
    for label, part in own.groupby("label", sort=False):
        part = part.sort_values("batch_size")
        memory.plot(part["batch_size"], part["backend_rss_mib"], marker="o", label=str(label), color=colors[label])
    memory.set_xticks(pair.batches)
    memory.set(xlabel="batch size (the suite's own input size)", ylabel="backend RSS, MiB")
    for ax, title in (
        (latency, "latency against pixels"),
        (speedup, "speedup against resolution"),
        (memory, "memory against batch"),
    ):
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    fig.suptitle(f"{pair.suite} / {pair.model}", fontsize="medium")
    fig.tight_layout()
    return fig


def figure_path(pair: SweptPair) -> Path:
    return Path("figures") / f"{figure_name('sweep', pair.suite, pair.model)}.png"


def write_sweep_figures(run_dir: Path, df: pd.DataFrame) -> list[Path]:
    """figures/sweep_<suite>_<model>.png for each swept suite and model."""
    return [save_figure(sweep_chart(pair), run_dir / figure_path(pair)) for pair in swept_pairs(df)]


HEADERS = ("backend", "shape", "p50 ms", "p99 ms", "speedup", "images/s", "backend RSS MiB", "timing")


def table_cells(pair: SweptPair) -> list[list[str]]:
    """One line per measured row, backend by backend in run order (fp32 eager first), shapes by pixels then
    batch."""
    order = {label: i for i, label in enumerate(dict.fromkeys(pair.rows["label"]))}
    rows = pair.rows.assign(rank=pair.rows["label"].map(order)).sort_values(
        ["rank", "pixels", "batch_size"], kind="stable"
    )
    return [
        [
            str(r["label"]),
            str(r["shape"]),
            _number(r.get("latency_p50_ms"), "{:.2f}"),
            _number(r.get("latency_p99_ms"), "{:.2f}"),
            _number(r.get("speedup_vs_fp32"), "{:.2f}x"),
            _number(r.get("throughput_ips"), "{:.1f}"),
            _number(r.get("backend_rss_mib"), "{:.0f}"),
            "NOISY" if str(r.get("timing_quality", "")).startswith("noisy") else str(r.get("timing_quality") or ""),
        ]
        for _, r in rows.iterrows()
    ]


def _number(value: object, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return fmt.format(value)


def _findings(pair: SweptPair) -> list[str]:
    exponents = ", ".join(f"{label} {slope:.2f}" for label, slope in pair.exponents().items())
    return [
        *([f"latency grows as pixels^k at batch {pair.batches[0]}: k = {exponents}"] if exponents else []),
        *pair.where_int8_stops_paying(),
    ]


def markdown_section(run_dir: Path, df: pd.DataFrame) -> list[str]:
    """report.md's section (none for a run without a sweep)."""
    lines: list[str] = []
    for pair in swept_pairs(df):
        figure = figure_path(pair)
        lines += [
            f"### {pair.suite} / {pair.model}",
            "",
            tabulate(table_cells(pair), headers=HEADERS, tablefmt="github", disable_numparse=True),
            "",
            *(f"- {line}" for line in _findings(pair)),
            "",
            *(
                [f"![{SWEEP.title}: {pair.suite} / {pair.model}]({figure.as_posix()})", ""]
                if (run_dir / figure).is_file()
                else []
            ),
        ]
    if not lines:
        return []
    return [f"## {SWEEP.title}", "", *textwrap.wrap(SWEEP.intro, 100), "", *lines]


def html_section(df: pd.DataFrame) -> str | None:
    """report.html's section body (the charts embedded), None for a run without a sweep."""
    parts = []
    for pair in swept_pairs(df):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_cells(pair)
        )
        findings = "".join(f"<li>{html.escape(line)}</li>" for line in _findings(pair))
        alt = f"Shape sweep of {pair.suite} / {pair.model}: latency, speedup and memory against shape"
        parts.append(
            f"<h3>{html.escape(pair.suite)} / {html.escape(pair.model)}</h3>"
            f'<div class="table-wrap"><table class="sweep"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f'</table></div><ul>{findings}</ul><img class="figure" src="{png_uri(sweep_chart(pair))}" '
            f'alt="{html.escape(alt)}">'
        )
    if not parts:
        return None
    return f'<p class="note">{html.escape(SWEEP.intro)}</p>' + "".join(parts)
