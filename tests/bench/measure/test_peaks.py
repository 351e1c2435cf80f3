"""The machine's peaks: theoretical ones from the flags (hand arithmetic), the measured record kept and read
back, a precision without a peak saying why, and a real measurement at small sizes (integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.measure import peaks as peaks_module
from bench.measure.peaks import MachinePeaks, machine_peaks, measure_peaks, theoretical_peaks

SKYLAKE = ["avx2", "fma", "avx512f", "avx512bw"]
CASCADE_LAKE = [*SKYLAKE, "avx512_vnni"]
SAPPHIRE_RAPIDS = [*CASCADE_LAKE, "avx512_bf16", "amx_int8", "amx_bf16"]


def test_theoretical_peaks_are_lanes_times_units_times_cores_times_frequency() -> None:
    found = theoretical_peaks(CASCADE_LAKE, 4, 3000.0, "cpufreq cpuinfo_max_freq", threads=2)
    fp32, int8, bf16 = (found["precisions"][p] for p in ("fp32", "int8", "bf16"))
    assert (fp32["isa"], fp32["macs_per_cycle_per_core"]) == ("AVX-512", 32)
    assert fp32["gmacs"] == 32 * 4 * 3.0 and fp32["gmacs_at_threads"] == 32 * 2 * 3.0  # 384 and 192
    assert (int8["isa"], int8["gmacs"]) == ("AVX-512 VNNI", 128 * 4 * 3.0)
    assert bf16["isa"] == "AVX-512 (bf16 widened to fp32)" and bf16["gmacs"] == fp32["gmacs"]
    assert found["frequency_source"] == "cpufreq cpuinfo_max_freq"


@pytest.mark.parametrize(
    "flags, int8, bf16",
    [
        (SAPPHIRE_RAPIDS, ("AMX-INT8", 1024), ("AMX-BF16", 512)),
        (SKYLAKE, ("AVX-512BW", 128 / 3), ("AVX-512 (bf16 widened to fp32)", 32)),
        (["avx2", "fma", "avx_vnni"], ("AVX-VNNI", 64), ("AVX2+FMA (bf16 widened to fp32)", 16)),
    ],
)
def test_each_instruction_set_takes_its_rate(flags, int8, bf16) -> None:
    found = theoretical_peaks(flags, 1, 1000.0, "test", threads=1)["precisions"]
    assert (found["int8"]["isa"], found["int8"]["macs_per_cycle_per_core"]) == int8
    assert (found["bf16"]["isa"], found["bf16"]["macs_per_cycle_per_core"]) == bf16


def test_an_unknown_frequency_leaves_the_rates_without_gmacs() -> None:
    found = theoretical_peaks(["sse2"], 2, None, "unreadable: nothing", threads=2)
    assert found["precisions"]["fp32"] == {
        "isa": "SSE",
        "macs_per_cycle_per_core": 4,
        "gmacs": None,
        "gmacs_at_threads": None,
    }
    assert found["precisions"]["int8"]["isa"] is None and found["frequency_source"].startswith("unreadable")


def test_a_row_precision_gets_its_peak_or_why_not() -> None:
    peaks = MachinePeaks(2, {"fp32": 100.0, "bf16": 400.0}, {"int8": "RuntimeError: no _int_mm here"}, 20.0)
    assert peaks.peak("fp32") == (100.0, "fp32 GEMM, 2 thread(s)")
    assert peaks.peak("int8") == (None, "no measured int8 peak: RuntimeError: no _int_mm here")
    assert MachinePeaks.unavailable(2, "a CUDA run").peak("fp32") == (None, "a CUDA run")


def test_the_record_is_measured_once_then_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = MachinePeaks(2, {"fp32": 100.0}, {}, 20.0, measure_s=1.5, measured_at="2026-01-01T00:00:00+00:00")
    calls = []
    monkeypatch.setattr(peaks_module, "measure_peaks", lambda threads, priority: calls.append(threads) or measured)
    record = tmp_path / "machine" / "peaks.json"
    first = machine_peaks(2, record=record)
    again = machine_peaks(2, record=record)
    assert calls == [2] and not first.cached and again.cached
    assert (again.gmacs, again.bandwidth_gbs, again.measure_s) == ({"fp32": 100.0}, 20.0, 1.5)
    record.write_text(json.dumps({**json.loads(record.read_text()), "version": 0}))  # an older VERSION's
    machine_peaks(2, record=record)
    assert calls == [2, 2]


@pytest.mark.integration
def test_a_real_measurement_at_small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peaks_module, "GEMM_SIZE", 128)
    monkeypatch.setattr(peaks_module, "COPY_MIB", 4)
    found = measure_peaks(1)
    assert set(found.gmacs) | set(found.missing) == {"fp32", "int8", "bf16"}
    assert all(v > 0 for v in found.gmacs.values()) and "fp32" in found.gmacs
    assert found.bandwidth_gbs is not None and found.bandwidth_gbs > 0
    assert found.measure_s is not None and found.measured_at
