"""report.html: one self-contained file with the right table and figures, that a real browser renders."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from bench.report.charts import cell_labels
from bench.report.html import write_html

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
]
BACKENDS = ["torch-eager", "ort-qdq-int8", "torch-fx-int8", "tensorrt-int8"]


def _row(
    backend: str,
    precision: str,
    p50: float | None,
    drift: float | None,
    mib: float | None,
    status: str = "ok",
    model: str = "unet",
) -> dict:
    number = p50 is not None
    return {
        "suite": "synthetic-nuclei",
        "model": model,
        "backend": backend,
        "precision": precision,
        "device": "cpu",
        "status": status,
        "batch_size": 1,
        "latency_p50_ms": p50,
        "latency_p90_ms": p50 * 1.1 if number else None,
        "latency_p99_ms": p50 * 1.5 if number else None,
        "model_size_bytes": mib * 2**20 if number else None,
        "dice": 0.98 + drift if number else None,
        "miou": 0.97 + drift if number else None,
        "dice_drift": drift,
        "miou_drift": drift,
        "pixel_agreement": 1.0 + drift if number else None,
    }


def make_run(root: Path, per_image: bool = True, gradcam: bool = False, rows: list[dict] | None = None) -> Path:
    """A run folder as `segbench run` leaves it, written by hand: no benchmark runs here."""
    run = root / "20260101-120000"
    run.mkdir()
    df = pd.DataFrame(
        rows
        or [
            _row("torch-eager", "fp32", 10.0, 0.0, 7.4),
            _row("ort-qdq-int8", "int8", 4.0, -0.001, 1.9),
            _row("torch-fx-int8", "int8", 5.0, -0.01, 1.9),
            _row("tensorrt-int8", "int8", None, None, None, "unavailable: tensorrt is not importable"),
        ]
    )
    df.to_parquet(run / "results.parquet", index=False)
    (run / "env.json").write_text(
        json.dumps(
            {
                "cpu_model": "Test CPU",
                "logical_cores": 2,
                "threads": 2,
                "gpu": None,
                "os": "Linux",
                "python": "3.11",
                "libraries": {"torch": "2.13.0"},
                "git_commit": "abc123",
                "git_dirty": False,
                "date": "2026-01-01",
            }
        )
    )
    rng = np.random.default_rng(0)
    if per_image:
        ok = df[df.status == "ok"]
        pd.concat(
            [
                pd.DataFrame(
                    {
                        **{c: r[c] for c in ("suite", "model", "backend", "precision", "device", "batch_size")},
                        "image_index": np.arange(16),
                        "dice": rng.uniform(0.9, 1.0, 16),
                    }
                )
                for _, r in ok.iterrows()
            ]
        ).to_parquet(run / "per_image.parquet", index=False)
    if gradcam:
        (run / "figures").mkdir()
        matplotlib.image.imsave(run / "figures" / "gradcam_unet.png", rng.uniform(size=(32, 64)))
    return run


def test_report_is_one_self_contained_file(tmp_path):
    text = write_html(make_run(tmp_path, gradcam=True)).read_text()
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?data:)""", text), "every src/href must be a data: URI"
    assert "<link" not in text and "url(" not in text
    assert "segbench run 20260101-120000" in text


def test_summary_table_names_every_backend_and_unavailable_rows_are_listed(tmp_path):
    text = write_html(make_run(tmp_path)).read_text()
    table = re.search(r'<table id="summary">.*?</table>', text, re.S).group(0)
    for backend in BACKENDS:
        assert f">{backend}" in table
    assert "tensorrt-int8:int8</b>: unavailable: tensorrt is not importable" in text
    assert "CPU: Test CPU" in text


def test_one_image_per_figure_each_with_alt_and_class(tmp_path):
    text = write_html(make_run(tmp_path, gradcam=True)).read_text()
    images = re.findall(r"<img [^>]*>", text)
    assert len(images) == 5  # latency, size, drift, per-image Dice, one Grad-CAM montage
    assert all('class="figure"' in img and re.search(r'alt="[^"]{10,}"', img) for img in images)
    assert all(img.count('src="data:image/png;base64,') == 1 for img in images)
    for heading in (
        "Latency per backend",
        "Model size per backend",
        "Accuracy drift vs latency",
        "Per-image Dice",
        "Grad-CAM",
    ):
        assert f"<h2>{heading}</h2>" in text


def test_without_per_image_data_the_dice_chart_is_left_out(tmp_path):
    text = write_html(make_run(tmp_path, per_image=False)).read_text()
    assert len(re.findall(r"<img ", text)) == 3
    assert "Per-image Dice" not in text and "Grad-CAM" not in text


def test_rows_timed_on_a_busy_machine_are_marked_with_their_reasons(tmp_path):
    from bench.report.markdown import write_markdown

    rows = [_row("torch-eager", "fp32", 10.0, 0.0, 7.4), _row("ort-qdq-int8", "int8", 4.0, -0.001, 1.9)]
    rows[0]["timing_quality"], rows[1]["timing_quality"] = "ok", "noisy: other processes used 33% of the CPU"
    run = make_run(tmp_path, rows=rows)
    text = write_html(run).read_text()
    assert "NOISY" in text and "ort-qdq-int8 int8: other processes used 33% of the CPU" in text
    markdown = write_markdown(run, pd.read_parquet(run / "results.parquet")).read_text()
    assert "## Rows timed on a busy or slow machine" in markdown and "NOISY" in markdown


def test_stages_that_failed_in_rows_that_stand_are_listed_with_their_cause(tmp_path):
    from bench.report.markdown import write_markdown

    rows = [_row("torch-eager", "fp32", 10.0, 0.0, 7.4), _row("openvino", "fp32", 4.0, 0.0, 7.4)]
    rows[0] |= {"evaluation_status": "ok", "gradcam_status": "ok", "gradcam_layer": "decoder.3"}
    rows[1] |= {"gradcam_status": "error: RuntimeError: 'stop' input is not a scalar", "evaluation_status": "ok"}
    rows[1] |= {"profile_status": "error: RuntimeError: no counters"}
    run = make_run(tmp_path, rows=rows)
    page = write_html(run).read_text()
    cause = "synthetic-nuclei / unet / openvino fp32: gradcam: error: RuntimeError: &#x27;stop&#x27; input is not"
    assert "<h2>Stages that failed</h2>" in page and cause in page
    markdown = write_markdown(run, pd.read_parquet(run / "results.parquet")).read_text()
    failures = markdown.split("## Stages that failed")[1].split("##")[0]
    assert "- synthetic-nuclei / unet / openvino fp32: profile: error: RuntimeError: no counters" in failures
    assert "torch-eager" not in failures
    table = markdown.split("## Grad-CAM")[1].split("##")[0]  # the failed row stays in the Grad-CAM table
    assert "| openvino " in table and "| error " in table


def test_a_run_where_no_cell_ran_still_gets_its_report(tmp_path):
    rows = [
        {
            "suite": "s",
            "model": "m",
            "backend": b,
            "precision": "int8",
            "device": "cpu",
            "batch_size": 1,
            "status": "unavailable: tensorrt is not importable",
        }
        for b in ("tensorrt-int8", "tensorrt-fp16")
    ]
    text = write_html(make_run(tmp_path, per_image=False, rows=rows)).read_text()
    assert "<img " not in text and text.count("unavailable: tensorrt is not importable") >= 2


def test_several_models_get_their_own_labels_and_drift_panels(tmp_path):
    rows = [_row("torch-eager", "fp32", 10.0, 0.0, 7.4, model=m) for m in ("unet", "tiny")]
    rows += [_row("ort-qdq-int8", "int8", 4.0, -0.001, 1.9, model=m) for m in ("unet", "tiny")]
    assert cell_labels(pd.DataFrame(rows))[1] == "tiny torch-eager:fp32"
    assert len(re.findall(r"<img ", write_html(make_run(tmp_path, rows=rows)).read_text())) == 4


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); CI installs it")
def test_report_renders_in_headless_chromium(tmp_path):
    report = write_html(make_run(tmp_path, gradcam=True))
    dom = _chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile").stdout
    assert 'id="summary"' in dom
    assert len(re.findall(r"<img ", dom)) == 5
    assert 'data-images-loaded="5"' in dom, "every embedded PNG must decode in the browser"
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri(), profile=tmp_path / "profile")
    assert shot.stat().st_size > 20_000
    pixels = matplotlib.image.imread(shot)
    assert pixels.std() > 0.05, "the screenshot is blank"


LONG_ERROR = (
    "error: preparing the artifact: RuntimeError: Quantized backend not supported for operator "
    "aten::upsample_bilinear2d.vec with arguments from the QuantizedCPU backend; see the cell's log file"
)


def _wide_rows() -> list[dict]:
    """Every summary column, the longest model and backend names, a long error and an unavailable row."""
    rows = [
        _row("torch-eager", "fp32", 10.0, 0.0, 7.4),
        _row("torchao-pt2e-int8", "int8", 1234.5, -0.0123, 1.9),
        _row("ort-qdq-int8", "int8", None, None, None, LONG_ERROR),
        _row("tensorrt-int8", "int8", None, None, None, "unavailable: tensorrt is not importable"),
    ]
    for row in rows:
        number = row["latency_p50_ms"] is not None
        row.update(
            model="deeplabv3plus-resnet18",
            speedup_vs_fp32=1.23 if number else None,
            timing_quality="ok" if number else None,
            backend_rss_mib=1234.5 if number else None,
        )
    return rows


def test_a_long_error_goes_to_a_details_row_not_the_status_cell(tmp_path):
    text = write_html(make_run(tmp_path, rows=_wide_rows())).read_text()
    table = re.search(r'<table id="summary">.*?</table>', text, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", re.sub(r'<tr class="status-details">.*?</tr>', "", table, flags=re.S))
    assert "error" in cells and "unavailable" in cells
    assert not any("RuntimeError" in cell or "importable" in cell for cell in cells)
    details = re.findall(r'<tr class="status-details"><td colspan="(\d+)"><details>(.*?)</details>', table, re.S)
    assert len(details) == 2
    assert all(int(span) == len(re.findall("<th>", table)) for span, _ in details)
    assert "ort-qdq-int8:int8: error" in details[0][1] and "aten::upsample_bilinear2d.vec" in details[0][1]


# Read back from the DOM by the browser test: how the summary table sits in a 1400 px wide window.
LAYOUT_PROBE = """<script>window.addEventListener('load', () => {
  const table = document.getElementById('summary'), wrap = table.parentElement;
  const right = wrap.getBoundingClientRect().right;
  const numbers = [...table.querySelectorAll('td.num')].filter(td => td.textContent.trim());
  document.body.dataset.layout = JSON.stringify({
    window: window.innerWidth, scrollWidth: wrap.scrollWidth, clientWidth: wrap.clientWidth,
    numbers: numbers.length,
    hidden: numbers.filter(td => td.getBoundingClientRect().right > Math.min(right, window.innerWidth) + 0.5
                                 || td.scrollWidth > td.clientWidth).map(td => td.textContent),
    errorInCell: [...table.querySelectorAll('tr:not(.status-details) > td')]
      .some(td => td.textContent.includes('RuntimeError')),
    errorInDetails: [...table.querySelectorAll('tr.status-details details')]
      .some(d => d.textContent.includes('RuntimeError')),
  });
});</script>"""


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); CI installs it")
def test_the_summary_fits_a_1400px_window_in_headless_chromium(tmp_path):
    report = write_html(make_run(tmp_path, rows=_wide_rows()))
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom = _chromium("--window-size=1400,1000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile").stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
    assert layout["window"] == 1400
    assert layout["scrollWidth"] <= layout["clientWidth"], f"the summary scrolls sideways: {layout}"
    assert layout["numbers"] >= 2 * 11 and layout["hidden"] == [], f"numbers cut or out of view: {layout}"
    assert not layout["errorInCell"] and layout["errorInDetails"]
