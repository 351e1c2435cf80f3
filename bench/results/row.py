"""One result row per suite x model x backend x precision x device x batch size (x input size, in a shape
sweep: `input_size` is empty at the suite's own size, so that rows from before sweeps keep their identity).

The row is built once, in the parent, from the records the cell's stages returned: each record says
which columns it fills (`columns()`), so a new metric is added to the record that computes it and
nowhere else. Every number names its unit, and where methods differ a sibling column names the
method (`timer`, `memory_method`, `gradcam_method`). A row that is not `ok` keeps its identity and
status and no numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.results.speedup import Speedup

IDENTITY_COLUMNS = ("suite", "model", "backend", "precision", "device", "batch_size", "input_size")


class RowPart(Protocol):
    """A stage's record: the row columns it fills."""

    def columns(self) -> dict[str, Any]: ...


# A stage's status column: `evaluation_status`, `gradcam_status`, `gradcam_status@fakequant`, `profile_status`.
STAGE_STATUS = re.compile(r"^(?P<stage>[a-z]+)_status(?P<method>@[\w-]+)?$")


@dataclass(frozen=True)
class StageStatus:
    """A stage's status column on its own: the record of a stage that returned none (it failed), so the
    row says why that stage's columns are empty while the cell's other numbers stand."""

    column: str
    status: str

    def columns(self) -> dict[str, Any]:
        return {self.column: self.status}


def stage_failures(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(stage, status) for every stage of a row that failed (`<stage>_status` reads `error: ...`):
    evaluation, gradcam, gradcam@fakequant, profile. A method's status that only repeats its stage's (the
    whole Grad-CAM stage failed) is not a failure of its own."""
    failed = []
    for column, value in row.items():
        found = STAGE_STATUS.match(column)
        if not found or not isinstance(value, str) or not value.startswith("error"):
            continue
        if found["method"] and row.get(f"{found['stage']}_status") == value:
            continue
        failed.append((f"{found['stage']}{found['method'] or ''}", value))
    return failed


@dataclass(frozen=True)
class Row:
    suite: str
    model: str
    backend: str
    precision: str
    device: str
    status: str  # "ok", "unavailable: <reason>" or "error: <message>"
    batch_size: int = 1
    threads: int | None = None
    input_size: str = ""  # "HxW" where a shape sweep (--input-sizes) timed another size than the suite's; else ""
    input_height: int | None = None  # the size the cell was timed at (the suite's own, or the sweep's), pixels
    input_width: int | None = None
    checkpoint_digest: str | None = None  # which float model: rows of two machines compare only if equal
    parts: tuple[RowPart, ...] = ()  # the stages' records, in column order
    speedup: Speedup | None = None  # against the fp32 reference of the same run, and how
    duration_s: float | None = None
    notes: str = ""
    options: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)  # goes to per_backend.json, not the table

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict[str, Any]:
        """The flat table row."""
        out: dict[str, Any] = {
            "suite": self.suite,
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "status": self.status,
            "batch_size": self.batch_size,
            "input_size": self.input_size,
            "input_height": self.input_height,
            "input_width": self.input_width,
            "threads": self.threads,
            "checkpoint_digest": self.checkpoint_digest,
        }
        for part in self.parts:
            out.update(part.columns())
        if self.speedup is not None:
            out.update(self.speedup.columns())
        else:
            out.update(speedup_vs_fp32=None, speedup_method=None)
        out.update(
            duration_s=self.duration_s,
            notes=self.notes,
            options=self.options,
        )
        return out


def cell_id(row: Mapping[str, Any]) -> str:
    """The identity of a stored row (a table record), as `CellSpec.key` spells it: a row at the suite's own
    input size (`input_size` empty, or absent in a table from before shape sweeps) keeps the six parts."""
    size = row.get("input_size") or ""
    return "/".join(str(row[c]) for c in IDENTITY_COLUMNS[:-1]) + (f"/{size}" if size else "")
