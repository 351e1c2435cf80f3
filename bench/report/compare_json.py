"""`segbench compare --format json`: the comparison as a document a CI job reads instead of parsing Markdown.

The same comparison the Markdown prints (bench/report/compare.py), with more in it: every compared column
of every matched row, each with its verdict (regression, improvement, unchanged, not judged) and why, so
a dashboard can show what moved within its threshold and what could not be judged. The exit code is the
Markdown's: 1 when `regressions` is not empty. `schema_version` is this document's, raised when a field
changes meaning (decision.json's style).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from bench.report.compare import Comparison, Run
from bench.results.row import IDENTITY_COLUMNS

SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NaN and missing values as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def compare_json(comparison: Comparison, baseline: Run, current: Run) -> dict[str, Any]:
    """The document: both sides, the warnings, the regressions in words, and per matched row its identity,
    statuses, the latency test's numbers and every judged column's verdict."""
    rows = []
    for record in comparison.table.to_dict("records"):
        label = "/".join(str(record[c]) for c in IDENTITY_COLUMNS)
        rows.append(
            {
                **{name: _plain(value) for name, value in record.items()},
                "columns": [
                    {name: _plain(value) for name, value in asdict(verdict).items()}
                    for verdict in comparison.verdicts.get(label, [])
                ],
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "baseline": {"path": str(baseline.path), "machine": baseline.machine},
        "current": {"path": str(current.path), "machine": current.machine},
        "regression": bool(comparison.regressions),
        "regressions": list(comparison.regressions),
        "warnings": list(comparison.warnings),
        "only_baseline": list(comparison.only_baseline),
        "only_current": list(comparison.only_current),
        "rows": rows,
    }
