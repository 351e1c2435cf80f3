"""`speedup_vs_fp32`: the fp32 reference's p50 divided by a row's p50, both measured in the same run.

Speeds are compared as ratios measured in the same run, because absolute times on shared machines
drift between runs. The reference row of a (suite, model, device, batch size) group is run first; a
resumed run finds it among the rows an earlier session finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

REFERENCE = ("torch-eager", "fp32")  # (backend, precision) every speedup is measured against
GROUP_COLUMNS = ("suite", "model", "device", "batch_size")


class SameRunReference:
    """The reference p50 of each group seen so far in this run."""

    def __init__(self, finished_rows: Iterable[Mapping[str, Any]] = ()) -> None:
        self._p50: dict[tuple[Any, ...], float] = {}
        for row in finished_rows:
            if (row.get("backend"), row.get("precision")) == REFERENCE and row.get("status") == "ok":
                self._p50[tuple(row[c] for c in GROUP_COLUMNS)] = float(row["latency_p50_ms"])

    def speedup(self, group: tuple[Any, ...], backend: str, precision: str, p50_ms: float) -> float | None:
        """This row's speedup; a reference row sets its group's p50 (and is 1.0 itself)."""
        if (backend, precision) == REFERENCE:
            self._p50[group] = p50_ms
        reference = self._p50.get(group)
        return reference / p50_ms if reference is not None and p50_ms > 0 else None
