"""`segbench history`'s Markdown summary and HTML page, from nightly run folders with one latency step
(ort 1.6x slower from the seventh night): the run span, the change's row with the commits on either side,
how the changes were found, and a page with one trend chart per changed series and nothing fetched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.report.history import History, build_history
from bench.report.history_page import CHANGE_HEADERS, change_rows, method_lines, to_html, to_markdown
from tests.bench.report.test_history import nightly

STEP_ROW = [
    "2026-11-07 02:00 06cccccccc (20261107-020000)",
    "synthetic-nuclei/unet/ort:fp32 cpu b1 t2",
    "latency_p50_ms",
    "worse",
    "step",
    "05cccccccc..06cccccccc",
]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = tmp_path_factory.mktemp("nightly")
    nightly(root, 10, step=("ort", 6, 1.6))
    return build_history(root)


def test_a_change_row_names_its_first_run_cell_direction_kind_and_commits(history: History):
    (row,) = change_rows(history, list(history.changes))
    assert len(row) == len(CHANGE_HEADERS) == 7
    assert [row[0], row[1], row[2], row[4], row[5], row[6]] == STEP_ROW
    assert row[3].endswith("ms (x1.62)")
    unconfirmed = replace(history.changes[0], confirmed=False)
    assert change_rows(history, [unconfirmed])[0][5] == "step, unconfirmed: noisy timing only"


def test_the_markdown_summary_counts_runs_series_and_recent_changes(history: History):
    lines = to_markdown(history, recent=4).splitlines()
    assert lines[0] == "# segbench history" and lines[2] == f"- results root: `{history.root}`"
    assert (
        lines[3]
        == "- 10 runs from 2026-11-01 02:00 to 2026-11-10 02:00 UTC, 1 machine(s): Test CPU, 2 cores, 2 threads"
    )
    assert lines[4] == "- 9 series (cell x metric with at least two valid runs)"  # 3 backends x latency, dice, Grad-CAM
    assert "## Confirmed changes in the newest 4 runs: 1" in lines
    assert "## Confirmed changes in the newest 3 runs: 0" in to_markdown(history, recent=3)  # the step is older
    table = lines[lines.index("## Changes, newest first") + 2 :]
    assert table[0].startswith("| first run") and all(field in table[2] for field in STEP_ROW)


def test_the_method_lines_give_this_historys_spread_and_thresholds(history: History):
    latency, quality = method_lines(history)
    sigma = 100 * history.latency_spread["Test CPU, 2 cores, 2 threads"]
    assert f"(one sigma per machine: Test CPU, 2 cores, 2 threads: {sigma:.1f}%)" in latency
    assert "(one sigma per machine: n/a)" in method_lines(replace(history, latency_spread={}))[0]
    assert "--quality-threshold" not in quality
    assert ", --quality-threshold for every score column" in method_lines(replace(history, quality_threshold=0.05))[1]


def test_the_page_is_self_contained_with_one_chart_per_changed_series(history: History):
    page = to_html(history, recent=4)
    assert page.count('<img class="trend" src="data:image/png;base64,') == 1 and "http" not in page
    assert 'alt="synthetic-nuclei/unet/ort:fp32 cpu b1 t2 latency_p50_ms"' in page
    assert "<p>10 runs; 1 change points, 1 confirmed in the newest 4 runs.</p>" in page
    assert page.count("<li>2026-11-") == 10  # every run listed
    quiet = to_html(replace(history, changes=()), recent=4)
    assert "<p>No change points.</p>" in quiet and '<div class="charts"><p>None.</p></div>' in quiet


def test_a_flat_history_has_no_changes(tmp_path: Path):
    nightly(tmp_path, 3)
    summary = to_markdown(build_history(tmp_path), recent=4)
    assert summary.endswith("## Changes, newest first\n\nnone\n")
