"""The decision section of a run folder's reports, on hand-made rows: the folder's own budgets and objective
from run.json, the ranked table in report.md and report.html, the int8 cells that do not pay explained with
their time sinks where a profile has them, and decision.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench.decide.decision import decide
from bench.decide.render import decision_json
from bench.report.decision import (
    DECISION_FILE,
    ReportedDecision,
    html_section,
    markdown_section,
    run_decision,
    time_sinks,
    write_decision,
)

SLOW_CELL = "camvid/unet/slow-int8/int8/cpu/1"
NOT_PAYING = "slower than fp32 eager (0.70x [0.68, 0.72]): quantizing does not pay here"


def _row(backend: str, precision: str, speedup: float, drift: float, classes: int = 3, **values: Any) -> dict[str, Any]:
    return {
        "suite": "camvid",
        "model": "unet",
        "backend": backend,
        "precision": precision,
        "device": "cpu",
        "batch_size": 1,
        "status": "ok",
        "timing_quality": "ok",
        "miou": 0.70,
        "dice": 0.75,
        "model_size_bytes": 4e6,
        "speedup_vs_fp32": speedup,
        "latency_p50_ms": 10.0 / speedup,
        "miou_drift": drift,
        "dice_drift": drift,
        **{f"iou_vs_reference_{c}": 1.0 for c in range(classes)},
        **values,
    }


def _rows(classes: int = 3) -> list[dict[str, Any]]:
    return [
        _row("torch-eager", "fp32", 1.0, 0.0, classes),
        _row("fast", "int8", 2.0, -0.001, classes, miou_drift_ci_low=-0.002, miou_drift_ci_high=0.0),
        _row("slow-int8", "int8", 0.7, -0.001, classes, speedup_vs_fp32_ci_low=0.68, speedup_vs_fp32_ci_high=0.72),
    ]


def test_the_folders_run_json_gives_the_budgets_and_the_objective(tmp_path: Path):
    default = run_decision(tmp_path, pd.DataFrame(_rows()))  # a folder from before budgets: the defaults
    assert default.objective == "latency" and default.given == ()
    assert default.groups[0].headline.startswith("ship fast int8")
    (tmp_path / "run.json").write_text(json.dumps({"budgets": ["miou_drift>=-0.0005"], "objective": "size"}))
    given = run_decision(tmp_path, pd.DataFrame(_rows()))
    assert given.objective == "size" and given.given == ("miou_drift>=-0.0005",)
    assert [b.describe() for b in given.groups[0].budgets] == ["miou_drift>=-0.0005"]
    assert given.groups[0].headline.startswith("ship torch-eager fp32")  # both int8 cells drift too much


def test_markdown_ranks_every_cell_and_explains_the_int8_that_does_not_pay():
    decision = decide(_rows(), {})
    lines = markdown_section(decision, {})
    assert lines[0] == "## Decision: which backend to ship"
    table = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert table == [
        "| 1 | fast int8 | recommended | meets every budget and is best on latency | 2.00x "
        "| -0.0010 [-0.0020, 0.0000] |",
        "| 2 | torch-eager fp32 | slower | fast int8 is 2.00x (p50 ratio, no interval) faster | 1.00x | 0.0000 |",
        f"| 3 | slow-int8 int8 | quantizing does not pay | {NOT_PAYING} | 0.70x [0.68, 0.72] | -0.0010 |",
    ]
    assert lines[-2] == f"- slow-int8 int8: {NOT_PAYING}; no profile to say where its time goes"
    profiled = markdown_section(decision, {SLOW_CELL: "Conv 60%, Relu 20%, Add 10%"})
    assert profiled[-2] == f"- slow-int8 int8: {NOT_PAYING}; where its time goes: Conv 60%, Relu 20%, Add 10%"


def test_the_drift_column_is_named_by_the_groups_quality_metric():
    header = next(line for line in markdown_section(decide(_rows(), {}), {}) if line.startswith("| # |"))
    assert header.endswith("| mIoU drift [95%] |")
    two_classes = next(line for line in markdown_section(decide(_rows(2), {}), {}) if line.startswith("| # |"))
    assert two_classes.endswith("| Dice drift [95%] |")


def test_html_marks_the_recommendation_and_escapes_every_text():
    rows = _rows()
    rows[2]["backend"] = "slow<int8>"
    page = html_section(decide(rows, {}), {})
    assert page.count('<tr class="recommended">') == 1
    assert '<tr class="recommended"><td>1</td><td>fast int8</td><td>recommended</td>' in page
    assert "<li><b>slow&lt;int8&gt; int8</b>: slower than fp32 eager" in page and "slow<int8>" not in page
    assert "MLPerf&#x27;s rule" in page  # the default budget's words, escaped


def test_decision_json_is_written_and_no_profile_means_no_time_sinks(tmp_path: Path):
    reported = ReportedDecision.of(tmp_path, pd.DataFrame(_rows()))
    assert reported.sinks == {} and time_sinks(tmp_path, reported.decision) == {}
    path = write_decision(tmp_path, reported.decision)
    assert path == tmp_path / DECISION_FILE
    assert json.loads(path.read_text()) == json.loads(json.dumps(decision_json(reported.decision)))
