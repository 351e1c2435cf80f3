"""The shape-sweep section: the fitted exponent against a known power law, where an int8 backend stops
paying, and the section present only for a sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.report.sweep import html_section, markdown_section, swept_pairs, write_sweep_figures


def _row(backend: str, precision: str, side: int, batch: int, p50: float, speedup: float, **more) -> dict:
    return {
        "suite": "s",
        "model": "m",
        "backend": backend,
        "precision": precision,
        "device": "cpu",
        "status": "ok",
        "batch_size": batch,
        "input_size": "" if side == 128 else f"{side}x{side}",
        "input_height": side,
        "input_width": side,
        "latency_p50_ms": p50,
        "latency_p99_ms": p50 * 1.1,
        "speedup_vs_fp32": speedup,
        "backend_rss_mib": 10.0 * batch,
        "timing_quality": "ok",
        **more,
    }


def _sweep() -> pd.DataFrame:
    """fp32: p50 = pixels / 1e4 ms (k = 1); int8: a fixed 2 ms plus pixels / 4e4 (k < 1): its speedup rises
    with the size, 0.68x at 128x128 (2.41 ms against 1.64), 1.80x at 256x256, 3.07x at 512x512."""
    rows = []
    for side in (128, 256, 512):
        pixels = side * side
        fp32, int8 = pixels / 1e4, 2.0 + pixels / 4e4
        rows.append(_row("torch-eager", "fp32", side, 1, fp32, 1.0))
        low = fp32 / int8 * 0.98
        rows.append(_row("ort-qdq-int8", "int8", side, 1, int8, fp32 / int8, speedup_vs_fp32_ci_low=low))
    rows.append(_row("torch-eager", "fp32", 128, 4, 6.0, 1.0))
    rows.append(_row("ort-qdq-int8", "int8", 128, 4, 5.0, 1.2, speedup_vs_fp32_ci_low=1.1))
    return pd.DataFrame(rows)


def test_the_exponent_of_a_known_power_law_and_where_int8_stops_paying() -> None:
    (pair,) = swept_pairs(_sweep())
    exponents = pair.exponents()
    assert exponents["torch-eager fp32"] == pytest.approx(1.0, abs=1e-9)
    assert 0.3 < exponents["ort-qdq-int8 int8"] < 1.0
    (line,) = pair.where_int8_stops_paying()
    assert line == "ort-qdq-int8 int8 does not pay at 128x128 b1 (0.68x)"
    assert list(pair.own_size["batch_size"]) == [1, 1, 4, 4]


def test_an_int8_backend_that_pays_everywhere_says_its_smallest_speedup() -> None:
    df = _sweep()
    df = df[~((df["input_height"] == 128) & (df["batch_size"] == 1))]
    (pair,) = swept_pairs(df)
    (line,) = pair.where_int8_stops_paying()
    assert line == "ort-qdq-int8 int8 pays at every shape measured; its smallest speedup is 1.20x at 128x128 b4"


def test_the_section_and_figure_only_for_a_sweep(tmp_path: Path) -> None:
    df = _sweep()
    (figure,) = write_sweep_figures(tmp_path, df)
    assert figure == tmp_path / "figures" / "sweep_s_m.png" and figure.stat().st_size > 10_000
    text = "\n".join(markdown_section(tmp_path, df))
    assert "## Shape sweep" in text and "k = torch-eager fp32 1.00" in text and "figures/sweep_s_m.png" in text
    assert "| torch-eager fp32 | 128x128 b1 |" in text.replace("  ", " ").replace("  ", " ")
    page = html_section(df)
    assert page is not None and 'class="sweep"' in page and "data:image/png;base64," in page
    one_shape = df[(df["input_height"] == 128) & (df["batch_size"] == 1)]
    assert list(swept_pairs(one_shape)) == [] and markdown_section(tmp_path, one_shape) == []
    assert html_section(one_shape) is None
