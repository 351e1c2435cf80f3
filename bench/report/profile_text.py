"""The profiles' findings in words (bench/report/profile_analysis.py's tables said as lines), one wording
for every place that says them: report.md and report.html (bench/report/profile_report.py), the op-type
chart's labels (bench/report/profile_chart.py), and the decision's time sinks (bench/report/decision.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.report.profile_analysis import (
    UNATTRIBUTED,
    Cell,
    cell_items,
    cell_profiles,
    contributors,
    counterparts,
    numeric,
    result_rows,
)


def ms_text(value: float) -> str:
    """Short milliseconds: one decimal from 1 ms, two significant digits below."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2g}"


def describe_item(item: Mapping[str, Any]) -> str:
    """What a contributor is, in words."""
    kind, name = item["kind"], item["item"]
    if kind == "layer":
        detail = ", ".join(str(v) for v in (item["op_types"], item["precisions"]) if v)
        return f"layer {name}" + (f" ({detail})" if detail else "")
    if kind == UNATTRIBUTED:
        return f"unattributed {name} ops" + (f" ({item['precisions']})" if item["precisions"] else "")
    return f"{kind} ops"


def item_text(item: Mapping[str, Any]) -> str:
    """A contributor (`cell_items` record) and its time: `layer head (Conv, int8) 1.7 ms/run`."""
    return f"{describe_item(item)} {ms_text(item['ms_per_run'])} ms/run"


def _multi(results: pd.DataFrame) -> bool:
    """Whether lines must name the device and batch size (the run has more than one of either)."""
    return any(c in results and results[c].nunique() > 1 for c in ("device", "batch_size"))


def cell_name(cell: Cell, with_setting: bool = False) -> str:
    """`suite / model / backend precision`, plus `(device, batch N)` when asked."""
    name = f"{cell.suite} / {cell.model} / {cell.backend} {cell.precision}"
    return name + (f" ({cell.device}, batch {cell.batch_size})" if with_setting else "")


def not_faster_lines(profile: pd.DataFrame | None, results: pd.DataFrame) -> list[str]:
    """One line per int8 cell whose p50 is not lower than its float counterpart's, naming its
    `CONTRIBUTORS` largest items (`contributors`) with their ms per run and the counterpart's time for
    the same item ("—": the counterpart has no op in it); then one line per int8 cell that ran without
    a float counterpart in the run. Without a list's markup (report.md's "- ", report.html's <li>)."""
    rows = result_rows(results)
    profiles = cell_profiles(profile) if profile is not None else {}
    setting = _multi(results)
    lines, alone = [], []
    for cell, counterpart in counterparts(results).items():
        row = rows[cell]
        if row.get("status") != "ok":
            continue
        if counterpart is None:
            alone.append(f"{cell_name(cell, setting)}: no float counterpart ran in this group, nothing to compare")
            continue
        p50, float_p50 = numeric(row, "latency_p50_ms"), numeric(rows[counterpart], "latency_p50_ms")
        if p50 is None or float_p50 is None or p50 < float_p50:
            continue
        head = (
            f"{cell_name(cell, setting)} {ms_text(p50)} ms is not faster than "
            f"{counterpart.backend} {counterpart.precision} {ms_text(float_p50)} ms"
        )
        if cell not in profiles:
            status = row.get("profile_status")  # NaN in a run without --profile
            lines.append(f"{head}: no profile ({status if isinstance(status, str) and status else 'not profiled'})")
            continue
        theirs = None
        if counterpart in profiles:
            items = cell_items(profiles[counterpart], unattributed_by_op_type=True)
            theirs = {(k, i): ms for k, i, ms in zip(items["kind"], items["item"], items["ms_per_run"])}
        named = []
        for item in contributors(profiles[cell]).to_dict("records"):
            text = item_text(item)
            if theirs is not None:
                other = theirs.get((item["kind"], item["item"]))
                text += f" ({counterpart.precision}: {'—' if other is None else ms_text(other)})"
            named.append(text)
        tail = "" if theirs is not None else f" ({counterpart.backend} {counterpart.precision} has no profile)"
        lines.append(f"{head}: largest contributors {', '.join(named)}{tail}")
    return lines + alone


def time_sinks_text(ops: pd.DataFrame) -> str:
    """A cell's `CONTRIBUTORS` largest items and their times, comma-separated: where its time goes."""
    return ", ".join(item_text(item) for item in contributors(ops).to_dict("records"))
