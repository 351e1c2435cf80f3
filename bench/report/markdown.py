"""report.md: the summary table and the environment, for pull requests and CI logs. The sections' words
are bench/report/sections.py's, as report.html's are."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from bench.report.decision import ReportedDecision
from bench.report.decision import markdown_section as decision_section
from bench.report.profile_report import markdown_section as profile_section
from bench.report.roofline import markdown_section as roofline_section
from bench.report.sections import ENVIRONMENT, GRADCAM, NOISY, STAGE_FAILURES, SUMMARY
from bench.report.sweep import markdown_section as sweep_section
from bench.report.tables import (
    environment_lines,
    gradcam_status_lines,
    gradcam_table,
    noisy_lines,
    stage_failure_lines,
    summary_table,
)
from bench.results.files import read_json


def _stage_failures_section(df: pd.DataFrame) -> list[str]:
    lines = stage_failure_lines(df)
    if not lines:
        return []
    return [
        f"## {STAGE_FAILURES.title}",
        "",
        *textwrap.wrap(STAGE_FAILURES.intro, 100),
        "",
        *(f"- {line}" for line in lines),
        "",
    ]


def _noisy_section(df: pd.DataFrame) -> list[str]:
    lines = noisy_lines(df)
    if not lines:
        return []
    return [f"## {NOISY.title}", "", f"{NOISY.lead}:", "", *(f"- {line}" for line in lines), ""]


def _gradcam_section(df: pd.DataFrame) -> list[str]:
    table = gradcam_table(df)
    if not table:
        return []
    marked = gradcam_status_lines(df)
    return [
        f"## {GRADCAM.title}",
        "",
        table,
        "",
        *textwrap.wrap(GRADCAM.legend, 100),
        "",
        *([f"{GRADCAM.lead}:", "", *(f"- {line}" for line in marked), ""] if marked else []),
    ]


def write_markdown(run_dir: Path, df: pd.DataFrame, decided: ReportedDecision | None = None) -> Path:
    """report.md; its first section is the decision (made here from the folder when not given)."""
    env_path = run_dir / "env.json"
    env = read_json(env_path) if env_path.exists() else {}
    decided = decided if decided is not None else ReportedDecision.of(run_dir, df)
    lines = [
        f"# segbench run `{run_dir.name}`",
        "",
        *decision_section(decided.decision, decided.sinks),
        f"## {SUMMARY.title}",
        "",
        summary_table(df),
        "",
        *textwrap.wrap(SUMMARY.legend, 100),
        "",
        *_stage_failures_section(df),
        *_noisy_section(df),
        *_gradcam_section(df),
        *profile_section(run_dir, df),  # only with profile.parquet
        *sweep_section(run_dir, df),  # only for a shape sweep
        *roofline_section(run_dir, df, env),  # only with rows that have a roofline
        f"## {ENVIRONMENT.title}",
        "",
        *environment_lines(env),
        "",
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
