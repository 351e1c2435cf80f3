"""The decision in words: the end of a run's terminal output, and decision.json.

decision.json (schema in docs/decision.md): `schema_version`, `objective`, `budgets_given`,
and per group its identity, `budgets` (each bound and where it came from), `headline`, `tie`, and
`cells` ranked: the recommendation first when there is one, each with `verdict`, `reason`, `flags`,
the budget checks and the numbers the decision read, with their 95% intervals.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.decide.decision import RECOMMENDED, Decision, GroupDecision
from bench.decide.entry import Entry, drift_text, speed_text, winner_name

SCHEMA_VERSION = 1
SHOWN = 8  # cells listed per group at the end of a run (the report lists all)


def budgets_text(group: GroupDecision) -> str:
    return "; ".join(b.describe() for b in group.budgets) or "none (no fp32 reference to keep a share of)"


def terminal_lines(decision: Decision) -> list[str]:
    """The decision at the end of a run: per group the recommendation, then the others with their reason."""
    lines = []
    for group in decision.groups:
        lines.append(f"Decision for {group.group}, objective {group.objective}; budgets: {budgets_text(group)}")
        lines.append(f"  {group.headline}")
        others = [e for e in group.entries if e.verdict != RECOMMENDED]
        for rank, entry in enumerate(others[:SHOWN], start=2 if group.recommended else 1):
            lines.append(f"  {rank}. {winner_name(entry)}: {entry.verdict}: {entry.reason}")
        if len(others) > SHOWN:
            lines.append(f"  ... {len(others) - SHOWN} more in report.md")
    return lines


def entry_numbers(entry: Entry) -> str:
    """`2.13x fp32 eager [2.05, 2.20], miou_drift -0.0001 [-0.0004, 0.0002]`"""
    return ", ".join(part for part in (speed_text(entry), drift_text(entry)) if part)


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "objective": decision.objective,
        "budgets_given": list(decision.given),
        "groups": [_group_json(group) for group in decision.groups],
    }


def _group_json(group: GroupDecision) -> dict[str, Any]:
    return {
        "suite": group.suite,
        "model": group.model,
        "device": group.device,
        "batch_size": group.batch_size,
        **({"machine": group.machine} if group.machine else {}),
        "objective": group.objective,
        "budgets": [{"bound": str(b.bound), "source": b.source} for b in group.budgets],
        "headline": group.headline,
        "recommended": group.recommended.cell if group.recommended else None,
        "tie": group.tie,
        "cells": [_entry_json(rank, entry) for rank, entry in enumerate(group.entries, start=1)],
    }


def _entry_json(rank: int, entry: Entry) -> dict[str, Any]:
    record = asdict(entry)
    record["checks"] = [
        {
            "bound": str(c.budget.bound),
            "outcome": c.outcome,
            "value": c.value,
            "ci_low": c.low,
            "ci_high": c.high,
            **({"why": c.why} if c.why else {}),
        }
        for c in entry.checks
    ]
    return {"rank": rank, **record}
