"""A row's share of peak from hand-made numbers: MACs at the p50, against its precision's peak, the bytes at
its precision and batch, and the status of a row that has no peak or no count."""

from __future__ import annotations

import pytest

from bench.measure.peaks import MachinePeaks
from bench.measure.roofline import Roofline
from bench.onnx.macs import GraphCount

# 2 GMAC an image; 1,000,000 weight elements, 9,000,000 activation elements an image
COUNT = GraphCount(2_000_000_000, 1_000_000, 9_000_000, nodes=10, counted_nodes=4, uncounted=(("Relu", 6),))
PEAKS = MachinePeaks(2, {"fp32": 100.0, "int8": 400.0, "bf16": 200.0}, {}, 25.0)


def test_an_fp32_row_against_the_fp32_peak() -> None:
    found = Roofline.of(COUNT, PEAKS, "fp32", "cpu", batch_size=1, p50_ms=40.0)
    assert found.status == "ok"
    assert found.gmac_per_image == 2.0
    assert found.achieved_gmacs == pytest.approx(50.0)  # 2 GMAC in 40 ms
    assert found.pct_of_peak == pytest.approx(50.0) and found.peak_gmacs == 100.0
    assert found.bytes_per_image == 10_000_000 * 4
    assert found.mac_per_byte == pytest.approx(2e9 / 4e7)
    assert found.uncounted_nodes_pct == 60.0 and found.uncounted_ops == "Relu 60%"


def test_an_int8_row_at_batch_4_moves_bytes_and_shares_its_weights() -> None:
    found = Roofline.of(COUNT, PEAKS, "int8", "cpu", batch_size=4, p50_ms=40.0)
    assert found.achieved_gmacs == pytest.approx(200.0)  # 4 images x 2 GMAC in 40 ms
    assert found.pct_of_peak == pytest.approx(50.0)  # against int8's 400
    assert found.bytes_per_image == 1_000_000 / 4 + 9_000_000  # one byte an element


def test_fp16_is_judged_against_bf16() -> None:
    assert Roofline.of(COUNT, PEAKS, "fp16", "cpu", 1, 40.0).peak_gmacs == 200.0


def test_a_row_without_a_peak_keeps_its_macs_and_says_why() -> None:
    cuda = Roofline.of(COUNT, PEAKS, "fp32", "cuda", 1, 40.0)
    assert cuda.status == "unavailable: no measured peak for cuda rows (the peaks are the CPU's)"
    assert cuda.pct_of_peak is None and cuda.achieved_gmacs == pytest.approx(50.0)
    missing = MachinePeaks(2, {"fp32": 100.0}, {"int8": "RuntimeError: no kernel"})
    assert Roofline.of(COUNT, missing, "int8", "cpu", 1, 40.0).status == (
        "unavailable: no measured int8 peak: RuntimeError: no kernel"
    )


def test_a_failed_count_is_the_status_and_nothing_else() -> None:
    found = Roofline.of("error: counting MACs: boom", PEAKS, "fp32", "cpu", 1, 40.0)
    columns = found.columns()
    assert columns["roofline_status"] == "error: counting MACs: boom"
    assert all(v in (None, "") for k, v in columns.items() if k != "roofline_status")
