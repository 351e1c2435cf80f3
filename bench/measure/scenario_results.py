"""The rows' records of the offline and server scenarios (bench/measure/scenarios.py): what was measured,
how quiet the machine was meanwhile, and the columns they write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure.contention import Contention


def _quality(contention: Contention | None) -> tuple[str | None, float | None, float | None]:
    if contention is None:
        return None, None, None
    return contention.timing_quality, contention.reference_slowdown, contention.cpu_other_pct


@dataclass(frozen=True)
class OfflineResult:
    """The offline scenario of one cell: its best setting, measured again after it was chosen (so the
    choice's own luck does not inflate the number), and how quiet the machine was meanwhile."""

    status: str  # ok | error: <cause>
    images_per_s: float | None = None  # the confirmation run of the best setting
    setting: str | None = None  # that setting, in the runtime's words
    batch_size: int | None = None
    callers: int | None = None
    search_images_per_s: float | None = None  # the best setting's rate when it was chosen
    tried: tuple[tuple[str, float], ...] = ()  # every setting measured and its images/s
    contention: Contention | None = None  # over every offline turn of the cell
    failed: tuple[tuple[str, str], ...] = ()  # settings whose turn raised, and why (also in the run's log)

    def columns(self) -> dict[str, Any]:
        quality, slowdown, other = _quality(self.contention)
        return {
            "offline_status": self.status,
            "offline_ips": self.images_per_s,
            "offline_setting": self.setting,
            "offline_batch_size": self.batch_size,
            "offline_callers": self.callers,
            "offline_search_ips": self.search_images_per_s,
            "offline_settings_tried": len(self.tried),
            "offline_settings_failed": len(self.failed),
            "offline_timing_quality": quality,
            "offline_reference_slowdown": slowdown,
            "offline_cpu_other_pct": other,
        }

    def details(self) -> dict[str, Any]:
        return {
            "offline_settings": [{"setting": s, "images_per_s": ips} for s, ips in self.tried],
            "offline_settings_failed": [{"setting": s, "error": error} for s, error in self.failed],
        }


@dataclass(frozen=True)
class ServerResult:
    """The server scenario of one cell: the highest rate found under the bound and confirmed, in images a
    second (queries times the batch size), the p50 and p99 of the confirmation run at that rate, and the
    search's own p99 there."""

    status: str  # ok | unconfirmed: ... | not met: ... | ceiling: ... | error: <cause>
    latency_bound_ms: float
    max_rate_ips: float | None = None  # the rate of the confirmation that passed (unconfirmed: the last tried)
    p50_ms: float | None = None  # that confirmation run's
    p99_ms: float | None = None
    search_p99_ms: float | None = None  # the search's probe at the rate found
    queries: int | None = None  # per probe and in the confirmation run
    probes: int = 0  # runs of the search, confirmations included
    confirmations: int = 0  # confirmation runs (a failed one sends the search on below it)
    setting: str | None = None  # what served the queries (the best offline setting at the run's batch size)
    probe_rates: tuple[tuple[float, float, bool], ...] = ()  # (queries/s, p99 ms, passed) of every probe
    contention: Contention | None = None

    def columns(self) -> dict[str, Any]:
        quality, slowdown, other = _quality(self.contention)
        return {
            "server_status": self.status,
            "server_latency_bound_ms": self.latency_bound_ms,
            "server_max_rate_ips": self.max_rate_ips,
            "server_p50_ms": self.p50_ms,
            "server_p99_ms": self.p99_ms,
            "server_search_p99_ms": self.search_p99_ms,
            "server_queries": self.queries,
            "server_probes": self.probes,
            "server_confirmations": self.confirmations,
            "server_setting": self.setting,
            "server_timing_quality": quality,
            "server_reference_slowdown": slowdown,
            "server_cpu_other_pct": other,
        }

    def details(self) -> dict[str, Any]:
        return {
            "server_probes": [
                {"queries_per_s": rate, "p99_ms": p99, "passed": passed} for rate, p99, passed in self.probe_rates
            ]
        }
