"""Each section's words are said once (bench/report/sections.py) and both reports render them: a run folder
with every section that both reports have, and each title, intro, legend, lead and header found in both."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from bench.report.files import write_reports
from bench.report.profile_analysis import PROFILE_FILE, cell_profiles, read_profile
from bench.report.sections import (
    CELLS_WITHOUT_RESULTS,
    DECISION,
    ENVIRONMENT,
    GRADCAM,
    NOISY,
    PROFILES,
    ROOFLINE,
    STAGE_FAILURES,
    SUMMARY,
    Section,
)
from tests.bench.report.profiled_run import make_run

BOTH = (DECISION, SUMMARY, STAGE_FAILURES, NOISY, GRADCAM, PROFILES, ROOFLINE, ENVIRONMENT)


def _every_section(tmp_path: Path) -> Path:
    """The profiled run, one row of it timed on a busy machine and one with maps not to be trusted, every
    row with a share of peak."""
    run = make_run(tmp_path)
    results = pd.read_parquet(run / "results.parquet")
    results["timing_quality"] = ["noisy: other processes used 33% of the CPU", *["ok"] * (len(results) - 1)]
    results["gradcam_layer"] = "decoder.3"
    results["gradcam_status"] = ["invalid: every map is zero", *["ok"] * (len(results) - 1)]
    results = results.assign(gmac_per_image=0.75, achieved_gmacs=40.0, roofline_mac_per_byte=25.0, roofline_status="ok")
    results.to_parquet(run / "results.parquet", index=False)
    return run


def _flat(text: str) -> str:
    """Whitespace as single spaces: report.md wraps its legends at 100 characters."""
    return " ".join(text.split())


def test_both_reports_title_each_section_from_its_one_definition(tmp_path: Path) -> None:
    run = _every_section(tmp_path)
    write_reports(run)
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    for section in BOTH:
        assert f"\n## {section.title}\n" in md, section.title
        assert f"<h2>{html.escape(section.html_title)}</h2>" in page, section.title
    assert f"<h2>{CELLS_WITHOUT_RESULTS.title}</h2>" in page  # report.md has no such section
    assert md.index(f"## {PROFILES.title}") < md.index(f"## {ENVIRONMENT.title}")


def test_both_reports_say_each_sections_words_from_its_one_definition(tmp_path: Path) -> None:
    run = _every_section(tmp_path)
    write_reports(run)
    md, page = _flat((run / "report.md").read_text()), (run / "report.html").read_text()
    said: list[tuple[Section, str]] = [
        (DECISION, DECISION.intro),
        (DECISION, DECISION.legend),
        (DECISION, f"{DECISION.lead}:"),
        (SUMMARY, SUMMARY.legend),
        (STAGE_FAILURES, STAGE_FAILURES.intro),
        (GRADCAM, GRADCAM.legend),
        (GRADCAM, f"{GRADCAM.lead}:"),
        (PROFILES, f"{PROFILES.lead}:"),
        (ROOFLINE, ROOFLINE.intro),
        (ROOFLINE, ROOFLINE.legend),
    ]
    for section, words in said:
        assert _flat(words) in md, section.title
        assert html.escape(words) in page, section.title
    assert f"{NOISY.lead}:" in md and f"{html.escape(NOISY.lead)}." in page  # the page says it as a sentence
    for header in ("#", "cell", "verdict", "reason", "speed vs fp32 eager [95%]", "mIoU drift [95%]"):
        assert f" {header} |" in md and f"<th>{html.escape(header)}</th>" in page
    profile = read_profile(run)
    assert profile is not None
    assert _flat(PROFILES.intro.format(cells=len(cell_profiles(profile)), file=PROFILE_FILE)) in md
    assert PROFILES.page_intro.format(file=f"<code>{PROFILE_FILE}</code>") in page


def test_every_section_has_a_title_and_report_md_ends_no_lead_with_a_colon() -> None:
    """A lead is words without their colon: each renderer adds its own punctuation."""
    for section in (*BOTH, CELLS_WITHOUT_RESULTS):
        assert section.title and section.html_title.startswith(section.title)
        assert not section.lead.endswith((":", "."))
