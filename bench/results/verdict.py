"""What a finished run's rows say for its exit code: cells that ended in error, and `--fail-on` bounds.

A nightly job must fail when a cell failed, and may ask for more (`--fail-on "dice_drift>=-0.01"`). The
rules, in the order they apply to each row and bound:

- an `error:` row fails the run by itself (its cell is named); bounds are not read on it;
- an `unavailable:` row (the backend cannot run on this machine) is not an error; it is named once and
  no bound is judged on it, since it has no numbers;
- the run's fp32 reference row is not judged on columns measured against it (`against_reference`:
  drift, agreement, SQNR, Grad-CAM divergence, `speedup_vs_fp32`): it is the yardstick, its speedup is 1
  and its drift 0 by definition, and `speedup_vs_fp32>=2` must not fail on it;
- a latency or speed bound on a row whose `timing_quality` is noisy is not judged (`not judged: noisy
  timing`): a time from a busy machine is no evidence either way; a scenario's column is judged by its
  scenario's flag (`offline_timing_quality`, `server_timing_quality`: `Column.quality_column`); a ratio
  paired by cycle (`speedup_vs_fp32`) is judged where the only reason was that the rounds disagreed
  (`Column.paired`, `bench.results.speedup.ratios_trusted`);
- an ok row with no valid value in the column (a Grad-CAM method that could not run) is named, not failed;
- otherwise a row outside the bound fails the run, named with its value and by how much it misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.results.bounds import Bound, number
from bench.results.row import cell_id
from bench.results.speedup import REFERENCE

NOISY = "not judged: noisy timing"


@dataclass(frozen=True)
class RunVerdict:
    errors: tuple[str, ...] = ()  # "cell: error: ..." per row that ended in error
    failed: tuple[str, ...] = ()  # "cell: bound: value, misses by x" per row and bound missed
    not_judged: tuple[str, ...] = ()  # unavailable rows, noisy timing, no value
    judged: int = 0  # (row, bound) pairs that were judged and held or failed

    @property
    def exit_code(self) -> int:
        return 1 if self.errors or self.failed else 0

    def lines(self, bounds: tuple[Bound, ...]) -> list[str]:
        """What the end of a run says (stderr): every error cell, failed bound and row not judged."""
        lines = []
        if self.errors:
            lines.append(f"{len(self.errors)} cell(s) ended in error (exit 1):")
            lines += [f"  {line}" for line in self.errors]
        if bounds:
            held = self.judged - len(self.failed)
            head = f"--fail-on {' '.join(map(str, bounds))}: {held} of {self.judged} judged row bound(s) held"
            lines.append(head + (f", {len(self.failed)} failed (exit 1):" if self.failed else ""))
            lines += [f"  {line}" for line in self.failed]
            lines += [f"  {line}" for line in self.not_judged]
        return lines


def label(row: Mapping[str, Any]) -> str:
    """A row's cell, and the node that measured it where a Ray run has several (`--per-node`)."""
    node = row.get("node")
    return cell_id(row) + (f" on {node}" if isinstance(node, str) and node else "")


def is_reference(row: Mapping[str, Any]) -> bool:
    return (str(row.get("backend")), str(row.get("precision"))) == REFERENCE


def judge_rows(rows: Iterable[Mapping[str, Any]], bounds: tuple[Bound, ...] = ()) -> RunVerdict:
    """The verdict of a run's rows under `bounds` (each parsed and declared: bench.results.bounds)."""
    errors, failed, not_judged, judged = [], [], [], 0
    for row in rows:
        status, cell = str(row.get("status", "")), label(row)
        if status.startswith("error"):
            errors.append(f"{cell}: {status}")
            continue
        if status != "ok":
            if bounds:
                not_judged.append(f"{cell}: {status.split(':')[0]}, no bound judged")
            continue
        for bound in bounds:
            declared = bound.declared
            assert declared is not None  # parse_bounds refuses undeclared columns
            if declared.against_reference and is_reference(row):
                continue
            if declared.noisy(row):  # its own scenario's timing (`Column.quality_column`)
                not_judged.append(f"{cell}: {bound}: {NOISY}")
                continue
            margin = bound.margin(row)
            if margin is None:
                not_judged.append(f"{cell}: {bound}: not judged: no value")
                continue
            judged += 1
            if margin < 0:
                failed.append(f"{cell}: {bound}: {number(row[bound.column])}, misses by {number(-margin)}")
    return RunVerdict(tuple(errors), tuple(failed), tuple(not_judged), judged)
