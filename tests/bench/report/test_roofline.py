"""The share-of-peak section from a hand-made run folder: its table, the machine's peaks in words, the
roofline chart as figures/roofline.png (linked from report.md, embedded in report.html), and nothing at
all for a run without the columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.files import write_reports
from bench.report.roofline import (
    FIGURE,
    html_section,
    markdown_section,
    peak_lines,
    roofline_chart,
    table_cells,
    write_roofline_figure,
)
from bench.report.sections import ROOFLINE

ENV: dict[str, Any] = {
    "peaks": {
        "measured": {
            "status": "ok",
            "threads": 2,
            "gmacs": {"fp32": 100.0, "int8": 400.0, "bf16": 200.0},
            "missing": {},
            "bandwidth_gbs": 25.0,
            "method": "GEMMs and a copy",
            "measured_at": "2026-01-01T00:00:00+00:00",
        },
        "theoretical": {
            "physical_cores": 2,
            "mhz": 3000.0,
            "frequency_source": "cpufreq cpuinfo_max_freq",
            "precisions": {"fp32": {"isa": "AVX-512", "macs_per_cycle_per_core": 32, "gmacs": 192.0}},
            "assumption": "an upper bound",
        },
    }
}


def _results() -> pd.DataFrame:
    identity = {"suite": "s", "model": "unet", "device": "cpu", "batch_size": 1}
    return pd.DataFrame(
        [
            {
                **identity,
                "backend": "torch-eager",
                "precision": "fp32",
                "status": "ok",
                "gmac_per_image": 0.754,
                "achieved_gmacs": 50.0,
                "pct_of_peak": 50.0,
                "roofline_peak": "fp32 GEMM, 2 thread(s)",
                "roofline_mac_per_byte": 26.0,
                "roofline_uncounted_nodes_pct": 53.0,
                "roofline_uncounted_ops": "Relu 37%, Concat 8%",
                "roofline_status": "ok",
            },
            {
                **identity,
                "backend": "ort-qdq-int8",
                "precision": "int8",
                "status": "ok",
                "gmac_per_image": 0.754,
                "achieved_gmacs": 120.0,
                "pct_of_peak": 30.0,
                "roofline_peak": "int8 GEMM, 2 thread(s)",
                "roofline_mac_per_byte": 104.0,
                "roofline_uncounted_nodes_pct": 53.0,
                "roofline_uncounted_ops": "Relu 37%, Concat 8%",
                "roofline_status": "ok",
            },
            {**identity, "backend": "openvino", "precision": "fp32", "status": "unavailable: not installed"},
        ]
    )


def test_the_table_has_a_line_per_row_with_a_roofline() -> None:
    cells = table_cells(_results())
    assert [c[0] for c in cells] == ["torch-eager:fp32", "ort-qdq-int8:int8"]
    assert cells[1][1:] == [
        *("0.754", "104.0", "120.0", "30.0"),
        *("int8 GEMM, 2 thread(s)", "53%: Relu 37%, Concat 8%", "ok"),
    ]


def test_the_peaks_are_said_measured_then_theoretical() -> None:
    measured, theoretical = peak_lines(ENV)
    assert measured.startswith("Measured on 2 thread(s), 2026-01-01T00:00:00+00:00: GEMM GMAC/s fp32 100, int8 400")
    assert "streaming copy 25.0 GB/s" in measured
    assert theoretical.startswith("Theoretical on 2 core(s) at 3000.0 MHz (cpufreq cpuinfo_max_freq): fp32 192 GMAC/s")
    assert peak_lines({}) == []


def test_the_chart_is_a_file_report_md_links_and_report_html_embeds(tmp_path: Path) -> None:
    assert roofline_chart(_results(), ENV) is not None
    assert write_roofline_figure(tmp_path, _results(), ENV) == [tmp_path / FIGURE]
    lines = markdown_section(tmp_path, _results(), ENV)
    assert lines[0] == f"## {ROOFLINE.title}" and f"![{ROOFLINE.title}](figures/roofline.png)" in lines
    page = html_section(_results(), ENV)
    assert page is not None and 'id="roofline"' in page and "data:image/png;base64," in page


def test_a_run_without_the_columns_has_no_section_and_loses_an_old_figure(tmp_path: Path) -> None:
    old = _results().drop(columns=[c for c in _results().columns if "gmac" in c or c.startswith(("roofline", "pct"))])
    (tmp_path / "figures").mkdir()
    (tmp_path / FIGURE).write_bytes(b"stale")
    assert write_roofline_figure(tmp_path, old, ENV) == [] and not (tmp_path / FIGURE).exists()
    assert markdown_section(tmp_path, old, ENV) == [] and html_section(old, ENV) is None


def test_the_run_reports_carry_the_section(tmp_path: Path) -> None:
    _results().to_parquet(tmp_path / "results.parquet", index=False)
    (tmp_path / "env.json").write_text(json.dumps(ENV))
    assert tmp_path / FIGURE in write_reports(tmp_path)
    assert f"## {ROOFLINE.title}" in (tmp_path / "report.md").read_text()
    assert f"<h2>{ROOFLINE.title}</h2>" in (tmp_path / "report.html").read_text()
