"""The profile stage's record (`segbench run --profile`): the row's `profile_*` columns and the
per-operator table (profile.parquet) of one cell's profiled pass (`bench.backend.profiling`).

The profile is taken after the timing, so it never touches the latency columns; its own cost is stated
against the cell's unprofiled p50 (`profile_overhead_pct`), and so is how much of that p50 its operators
account for (`profile_ops_vs_p50_pct`): a profiler that sees only part of the work says so in the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.backend.profiling import OVERHEAD_CATEGORIES, Profile

PROFILE_COLUMNS = (
    "name",
    "op_type",
    "layer",
    "op_precision",
    "category",
    "calls",
    "total_us",
    "mean_us",
    "us_per_run",
    "profiler",
    "attribution",
)


@dataclass(frozen=True)
class ProfileResult:
    """One cell's profiled pass (or why there is none) and the unprofiled p50 it is judged against."""

    status: str  # ok | not available: <why> | error: <message>
    profile: Profile | None = None
    p50_ms: float | None = None  # the cell's own p50 per call, from the timing (batch included)

    @classmethod
    def of(cls, profile: Profile | None, backend: str) -> ProfileResult:
        if profile is None:
            return cls(f"not available: {backend} has no profiler")
        if not profile.ops or profile.calls <= 0:
            return cls("error: the profiler reported no operator", profile)
        return cls("ok", profile)

    def per_run_ms(self, us: float) -> float | None:
        return None if self.profile is None or self.profile.calls <= 0 else us / self.profile.calls / 1e3

    def columns(self) -> dict[str, Any]:
        profile = self.profile
        out: dict[str, Any] = {"profile_status": self.status}
        if profile is None or self.status != "ok":
            return out
        wall, ops = self.per_run_ms(profile.wall_us), self.per_run_ms(profile.ops_us)
        overhead = sum(op.total_us for op in profile.ops if op.category in OVERHEAD_CATEGORIES)
        p50 = self.p50_ms
        out.update(
            profile_method=profile.method,
            profile_calls=profile.calls,
            profile_ms_per_run=wall,
            profile_ops_ms_per_run=ops,
            profile_overhead_pct=None if not p50 or wall is None else (wall / p50 - 1) * 100,
            profile_ops_vs_p50_pct=None if not p50 or ops is None else ops / p50 * 100,
            profile_layer_attributed_pct=profile.attributed_us / profile.ops_us * 100 if profile.ops_us else None,
            profile_qdq_reorder_pct=overhead / profile.ops_us * 100 if profile.ops_us else None,
            profile_attribution=profile.attribution,
        )
        return out

    def records(self) -> list[dict[str, Any]]:
        """profile.parquet's rows for this cell (without its identity): one per operator, largest first."""
        profile = self.profile
        if profile is None or self.status != "ok":
            return []
        ops = sorted(profile.ops, key=lambda op: op.total_us, reverse=True)
        return [
            {
                "name": op.name,
                "op_type": op.op_type,
                "layer": op.layer,
                "op_precision": op.precision,
                "category": op.category,
                "calls": op.calls,
                "total_us": op.total_us,
                "mean_us": op.total_us / op.calls if op.calls else None,
                "us_per_run": op.total_us / profile.calls,
                "profiler": profile.method,
                "attribution": profile.attribution,
            }
            for op in ops
        ]
