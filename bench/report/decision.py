"""The decision of a run folder (bench.decide), made from its own files: the first section of report.md
and report.html, decision.json, and the end of `segbench run`.

The budgets and objective come from run.json (`segbench run --budget/--objective`; a folder from before
they existed is decided under the defaults), the cycles from samples.parquet, and, for an int8 cell that
does not pay, its three largest time sinks from profile.parquet (`--profile`, or the profile such a cell
gets without it). Its words (title, legend, table headers) are bench/report/sections.py's `DECISION`, which
report.md and report.html both render.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.cache import atomic_write_bytes
from bench.decide.budgets import Budget
from bench.decide.decision import RECOMMENDED, Decision, GroupDecision, decide
from bench.decide.entry import Entry, drift_text, speed_text, winner_name
from bench.decide.render import budgets_text, decision_json
from bench.decide.speed import cycle_times
from bench.report.profile_analysis import Cell, cell_profiles, read_profile
from bench.report.profile_text import time_sinks_text
from bench.report.sections import DECISION
from bench.results.bounds import parse_bounds
from bench.results.files import read_json, read_table

DECISION_FILE = "decision.json"
RUN_FILE = "run.json"


@dataclass(frozen=True)
class ReportedDecision:
    """A folder's decision and the time sinks of its flagged int8 cells: read once, rendered twice
    (report.md and report.html)."""

    decision: Decision
    sinks: dict[str, str]

    @classmethod
    def of(cls, run_dir: Path, df: pd.DataFrame) -> ReportedDecision:
        decision = run_decision(run_dir, df)
        return cls(decision, time_sinks(run_dir, decision))


def run_decision(run_dir: Path, df: pd.DataFrame) -> Decision:
    """Decide the folder's rows under the budgets and objective its run was given."""
    settings = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    budgets = tuple(Budget(b, "given") for b in parse_bounds(settings.get("budgets", ()), "--budget"))
    samples = run_dir / "samples.parquet"
    cycles = cycle_times(read_table(samples) if samples.is_file() else None)
    return decide(df.to_dict("records"), cycles, budgets, settings.get("objective", "latency"))


def write_decision(run_dir: Path, decision: Decision) -> Path:
    path = run_dir / DECISION_FILE
    atomic_write_bytes(path, json.dumps(decision_json(decision), indent=2).encode())
    return path


def time_sinks(run_dir: Path, decision: Decision) -> dict[str, str]:
    """Cell id -> its three largest time sinks, for each flagged int8 cell that was profiled."""
    profile = read_profile(run_dir)
    if profile is None:
        return {}
    profiles = cell_profiles(profile)
    found = {}
    for group in decision.groups:
        for entry in group.entries:
            cell = Cell(group.suite, group.model, entry.backend, entry.precision, group.device, group.batch_size)
            if entry.flags and cell in profiles:
                found[entry.cell] = time_sinks_text(profiles[cell])
    return found


def _explained(entry: Entry, sinks: dict[str, str]) -> list[str]:
    """The entry's flags, the profile's time sinks after the first."""
    lines = list(entry.flags)
    if lines and entry.cell in sinks:
        lines[0] += f"; where its time goes: {sinks[entry.cell]}"
    elif lines:
        lines[0] += "; no profile to say where its time goes"
    return lines


# ---------------------------------------------------------------- report.md


def markdown_section(decision: Decision, sinks: dict[str, str]) -> list[str]:
    lines = [f"## {DECISION.title}", ""]
    for group in decision.groups:
        columns = _columns(group)
        lines += [
            f"**{group.group}**, objective {group.objective}: **{group.headline}**",
            "",
            f"Budgets: {budgets_text(group)}. {DECISION.intro}",
            "",
            f"| {' | '.join(columns)} |",
            "|" + "---|" * len(columns),
        ]
        for rank, entry in enumerate(group.entries, start=1):
            speed, drift = _numbers(entry)
            reason = entry.reason.replace("|", "\\|")
            lines.append(f"| {rank} | {winner_name(entry)} | {entry.verdict} | {reason} | {speed} | {drift} |")
        lines += ["", DECISION.legend]
        flagged = [(entry, _explained(entry, sinks)) for entry in group.entries if entry.flags]
        if flagged:
            lines += ["", f"{DECISION.lead}:", ""]
            lines += [f"- {winner_name(entry)}: {'; '.join(texts)}" for entry, texts in flagged]
        lines.append("")
    return lines


def _columns(group: GroupDecision) -> list[str]:
    """The decision table's headers, the drift's named by the primary quality metric the group's drifts are
    of (mIoU, or Dice for two classes)."""
    metric = group.entries[0].quality_metric if group.entries else "miou"
    return [c.format(metric={"miou": "mIoU", "dice": "Dice"}.get(metric, metric)) for c in DECISION.columns]


def _numbers(entry: Entry) -> tuple[str, str]:
    """(speed vs fp32 eager with its interval, the quality drift with its interval); "—" where none."""
    speed = speed_text(entry).replace(" fp32 eager", "") if entry.speedup is not None else "—"
    return speed, drift_text(entry).removeprefix(f"{entry.quality_metric}_drift ") or "—"


# ---------------------------------------------------------------- report.html


def html_section(decision: Decision, sinks: dict[str, str]) -> str:
    parts = []
    for group in decision.groups:
        rows = []
        for rank, entry in enumerate(group.entries, start=1):
            speed, drift = _numbers(entry)
            mark = ' class="recommended"' if entry.verdict == RECOMMENDED else ""
            rows.append(
                f"<tr{mark}><td>{rank}</td><td>{html.escape(winner_name(entry))}</td>"
                f'<td>{html.escape(entry.verdict)}</td><td class="text">{html.escape(entry.reason)}</td>'
                f'<td class="num">{html.escape(speed)}</td><td class="num">{html.escape(drift)}</td></tr>'
            )
        flagged = "".join(
            f"<li><b>{html.escape(winner_name(e))}</b>: {html.escape('; '.join(_explained(e, sinks)))}</li>"
            for e in group.entries
            if e.flags
        )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _columns(group))
        parts.append(
            f'<p class="headline"><b>{html.escape(group.group)}</b>, objective {html.escape(group.objective)}: '
            f"<b>{html.escape(group.headline)}</b></p>"
            f'<p class="note">Budgets: {html.escape(budgets_text(group))}. {html.escape(DECISION.intro)}</p>'
            f'<div class="table-wrap"><table class="decision"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            f'<p class="note">{html.escape(DECISION.legend)}</p>'
            + (f'<p class="note">{html.escape(DECISION.lead)}:</p><ul>{flagged}</ul>' if flagged else "")
        )
    return "\n".join(parts)
