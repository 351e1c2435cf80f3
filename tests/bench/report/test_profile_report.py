"""The profiles in report.md and report.html, from a hand-written profiled run folder (no benchmark runs
here): the section's lines and tables, each cell's figure, and what a profile adds to the reports."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.report.files import write_reports
from bench.report.html import write_html
from bench.report.profile_analysis import attribution_tables, not_faster_layers, read_profile
from bench.report.profile_chart import figure_path
from bench.report.profile_report import html_sections, markdown_section
from bench.report.profile_text import not_faster_lines
from tests.bench.report.profiled_run import OPS, P50, cell, make_run, run_tables
from tests.bench.report.test_html import CHROMIUM, _chromium


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def test_the_markdown_section_lists_the_not_faster_lines(run: Path) -> None:
    profile, results = run_tables(run)
    lines = not_faster_lines(profile, results)
    section = markdown_section(run, results)
    assert section[0] == "## Profiles" and "`profile.parquet` in this run folder" in section[2]
    assert [line for line in section if line.startswith("- ")] == [f"- {line}" for line in lines]


def test_a_run_whose_every_profile_failed_still_says_why(run: Path) -> None:
    pd.DataFrame([]).to_parquet(run / "profile.parquet")  # no records: no columns either
    failed = "error: the profiler reported no operator"
    results = pd.read_parquet(run / "results.parquet").assign(profile_status=failed)
    profile = read_profile(run)
    assert profile is not None and profile.empty
    assert not_faster_lines(profile, results)[0] == (
        f"camvid / enet / ort-qdq-int8 int8 33.2 ms is not faster than ort fp32 32.8 ms: no profile ({failed})"
    )
    assert attribution_tables(profile, results) == {} and not_faster_layers(profile, results).empty
    ((_, body),) = html_sections(run, results)
    assert "<img" not in body and "profile-honesty" not in body
    assert body.count(f"</b>: {failed}</li>") == len(P50)  # every cell that ran, none profiled


def test_the_html_section_has_figures_tables_and_the_honesty_numbers(run: Path) -> None:
    results = pd.read_parquet(run / "results.parquet")
    ((title, body),) = html_sections(run, results)
    assert title.startswith("Profiles")
    figures = sorted((run / "figures").glob("profile_*.png"))
    assert len(figures) == len(OPS)
    assert figure_path(run, cell(("camvid", "enet", "ort-qdq-int8", "int8"))) in figures
    assert body.count('<img class="figure" src="data:image/png;base64,') == len(OPS)
    assert body.count("<details>") == len(OPS) + 2  # a cell each, and every layer of each model
    honesty = re.search(r'<table id="profile-honesty">.*?</table>', body, re.S).group(0)
    assert honesty.count("<tr>") == 1 + len(OPS)
    qdq = re.search(r"<tr><td>camvid / enet / ort-qdq-int8 int8 \(cpu, batch 1\)</td>(.*?)</tr>", honesty).group(1)
    numbers = re.findall(r'<td class="num">([^<]*)</td>', qdq)
    assert numbers[:3] == ["33.200", f"{21.8 * 1.25:.3f}", f"{(21.8 * 1.25 / 33.2 - 1) * 100:+.1f}"]
    assert numbers[3:5] == [f"{21.8:.3f}", f"{21.8 / 33.2 * 100:.1f}"]
    assert "camvid / unet / ort fp32</b>: error: the profiler reported no operator" in body
    enet = body[body.index("<h3>camvid / enet") : body.index("<h3>camvid / unet")]
    slower = re.search(r"not lower than their float counterpart's:</p>(.*?)</table>", enet, re.S).group(1)
    assert re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", slower) == [
        ("head", "ort-qdq-int8:int8"),
        ("decoder.up1", "ort-qdq-int8:int8"),
        ("enc.bn", "ort-qdq-int8:int8"),
        ("decoder.up1", "torch-fx-int8:int8"),
    ]
    assert '<td>dequantize ops</td><td class="num">0.000</td><td class="num">0.500</td>' in enet
    assert "<td>total profiled ops</td>" in enet
    unet = body[body.index("<h3>camvid / unet") :]  # ort fp32 has no profile, torchao no counterpart
    assert "None compared: no int8 cell here has a profiled float counterpart." in unet


def test_the_reports_of_a_profiled_run_only_add_the_profile_section(tmp_path: Path) -> None:
    plain, profiled = make_run(tmp_path / "plain", profiled=False), make_run(tmp_path / "profiled")
    results = pd.read_parquet(plain / "results.parquet")
    assert (
        read_profile(plain) is None and html_sections(plain, results) == [] and markdown_section(plain, results) == []
    )
    written = write_reports(plain)
    assert [p.name for p in written] == ["decision.json", "report.md", "report.html"] and not (
        plain / "figures"
    ).exists()
    md, page = (plain / "report.md").read_text(), (plain / "report.html").read_text()
    assert "Profiles" not in md and "Profiles" not in page
    written = write_reports(profiled)
    assert sorted(p for p in written if p.name.startswith("profile_")) == sorted(
        figure_path(profiled, cell(key)) for key in OPS
    )
    md_p, page_p = (profiled / "report.md").read_text(), (profiled / "report.html").read_text()
    section = md_p[md_p.index("## Profiles") : md_p.index("## Environment")]
    # the decision names where a flagged int8 cell's time goes, from the profile; else byte for byte the same
    decided = md_p[md_p.index("## Decision") : md_p.index("## Summary")]
    assert "where its time goes: " in decided and "no profile to say where its time goes" not in decided
    plain_decided = md[md.index("## Decision") : md.index("## Summary")]
    assert "no profile to say where its time goes" in plain_decided
    assert md_p.replace(section, "").replace(decided, "") == md.replace(plain_decided, "")
    html_section = page_p[page_p.index("<h2>Profiles") : page_p.index("<h2>Cells without results")]
    html_decided = page_p[page_p.index("<h2>Decision") : page_p.index("<h2>Summary")]
    plain_html_decided = page[page.index("<h2>Decision") : page.index("<h2>Summary")]
    assert page_p.replace(html_section, "").replace(html_decided, "") == page.replace(plain_html_decided, "")


# Read back from the DOM: the summary still fits the window, the page itself never scrolls sideways (the
# profile's wide tables scroll in their own wrappers), and every embedded figure decodes.
PROFILE_PROBE = """<script>window.addEventListener('load', () => {
  const wrap = document.getElementById('summary').parentElement;
  document.body.dataset.layout = JSON.stringify({
    window: window.innerWidth, summaryScroll: wrap.scrollWidth, summaryClient: wrap.clientWidth,
    pageScroll: document.documentElement.scrollWidth, images: document.images.length,
    decoded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
  });
});</script>"""


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); CI installs it")
def test_a_profiled_report_still_fits_a_1400px_window_in_headless_chromium(run: Path) -> None:
    report = write_html(run)
    probe = report.with_name("probe.html")
    text = report.read_text()
    probe.write_text(re.sub(r"<details>", "<details open>", text).replace("</body>", PROFILE_PROBE + "</body>"))
    dom = _chromium("--window-size=1400,1000", "--dump-dom", probe.as_uri(), profile=run.parent / "chrome").stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
    assert layout["window"] == 1400
    assert layout["summaryScroll"] <= layout["summaryClient"], f"the summary scrolls sideways: {layout}"
    assert layout["pageScroll"] <= 1400, f"the page scrolls sideways: {layout}"
    assert layout["images"] == layout["decoded"] == 1 + len(OPS)  # the latency chart, and one bar per cell
