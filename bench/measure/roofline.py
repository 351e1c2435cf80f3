"""A row's share of the machine's peak: the model's MACs per image (bench/onnx/macs.py), the MACs per
second its p50 latency makes of them, and that rate against the measured peak of the row's precision
(bench/measure/peaks.py); the bytes the counted ops move give the row its place on the roofline chart.

`achieved_gmacs` = gmac_per_image * batch / (p50 / 1000): MACs per second at the p50 latency, counted on
the float graph whatever the backend ran (a runtime that fuses or skips work is credited with the float
model's MACs). `pct_of_peak` is that against the measured GEMM peak of the row's precision: fp32 rows
against fp32, int8 against int8, bf16 and fp16 against bf16; a row with no such peak (a CUDA row: the
peaks are the CPU's) keeps its MACs and says why in `roofline_status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure.peaks import MachinePeaks
from bench.onnx.macs import GraphCount

PEAK_OF = {"fp32": "fp32", "int8": "int8", "bf16": "bf16", "fp16": "bf16"}  # row precision -> measured peak
ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}  # a counted tensor's element at that precision


@dataclass(frozen=True)
class Roofline:
    """The roofline columns of one measured row; `status` is `ok`, `unavailable: <why>` (no peak for its
    precision or device: the MACs stand) or `error: <one line>` (the graph could not be counted)."""

    status: str
    gmac_per_image: float | None = None
    achieved_gmacs: float | None = None
    pct_of_peak: float | None = None
    peak_gmacs: float | None = None
    peak: str = ""  # which measured peak pct_of_peak is against
    bytes_per_image: float | None = None
    mac_per_byte: float | None = None
    uncounted_nodes_pct: float | None = None
    uncounted_ops: str = ""

    @classmethod
    def of(
        cls,
        count: GraphCount | str,
        peaks: MachinePeaks,
        precision: str,
        device: str,
        batch_size: int,
        p50_ms: float,
    ) -> Roofline:
        """`count` is the model's graph count, or the status that says why there is none."""
        if isinstance(count, str):
            return cls(count)
        element = ELEMENT_BYTES.get(precision, 4)
        traffic = count.bytes_per_image(batch_size, element)
        achieved = count.gmac_per_image * batch_size / (p50_ms / 1e3) if p50_ms > 0 else None
        if device != "cpu":
            peak, what = None, f"no measured peak for {device} rows (the peaks are the CPU's)"
        elif precision not in PEAK_OF:
            peak, what = None, f"no measured peak for {precision}"
        else:
            peak, what = peaks.peak(PEAK_OF[precision])
        return cls(
            status="ok" if peak is not None else f"unavailable: {what}",
            gmac_per_image=count.gmac_per_image,
            achieved_gmacs=achieved,
            pct_of_peak=100.0 * achieved / peak if peak and achieved is not None else None,
            peak_gmacs=peak,
            peak=what if peak is not None else "",
            bytes_per_image=traffic,
            mac_per_byte=count.macs / traffic if traffic else None,
            uncounted_nodes_pct=count.uncounted_nodes_pct,
            uncounted_ops=count.uncounted_text(),
        )

    def columns(self) -> dict[str, Any]:
        return {
            "gmac_per_image": self.gmac_per_image,
            "achieved_gmacs": self.achieved_gmacs,
            "pct_of_peak": self.pct_of_peak,
            "roofline_status": self.status,
            "roofline_peak_gmacs": self.peak_gmacs,
            "roofline_peak": self.peak,
            "roofline_bytes_per_image": self.bytes_per_image,
            "roofline_mac_per_byte": self.mac_per_byte,
            "roofline_uncounted_nodes_pct": self.uncounted_nodes_pct,
            "roofline_uncounted_ops": self.uncounted_ops,
        }
