"""The machine's peaks: theoretical ones from the flags (hand arithmetic), the measured record kept and read
back, a precision without a peak saying why, and a real measurement at small sizes (integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.measure import peaks as peaks_module
from bench.measure.peaks import (
    MachinePeaks,
    gemm_size,
    machine_peaks,
    measure_peaks,
    reference_loop,
    theoretical_peaks,
)

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


def test_each_run_measures_and_the_record_keeps_the_best(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peak is a maximum: a run on a busy machine (lower GEMM rate) lowers nothing, a better one raises it."""
    runs = iter(
        [
            MachinePeaks(2, {"fp32": 100.0}, {"int8": "no _int_mm"}, 20.0, measured_at="2026-01-01T00:00:00+00:00"),
            MachinePeaks(2, {"fp32": 60.0, "int8": 300.0}, {}, 25.0, measured_at="2026-01-02T00:00:00+00:00"),
            MachinePeaks(2, {"fp32": 110.0}, {}, 10.0, measured_at="2026-01-03T00:00:00+00:00"),
        ]
    )
    monkeypatch.setattr(peaks_module, "measure_peaks", lambda threads, priority: next(runs))
    record = tmp_path / "machine" / "peaks.json"
    first = machine_peaks(2, record=record)
    assert (first.gmacs, first.runs, dict(first.missing)) == ({"fp32": 100.0}, 1, {"int8": "no _int_mm"})
    busy = machine_peaks(2, record=record)
    assert busy.gmacs == {"fp32": 100.0, "int8": 300.0} and busy.bandwidth_gbs == 25.0 and not busy.missing
    assert busy.runs == 2 and busy.first_measured_at == "2026-01-01T00:00:00+00:00"
    better = machine_peaks(2, record=record)
    assert better.gmacs == {"fp32": 110.0, "int8": 300.0} and better.bandwidth_gbs == 25.0 and better.runs == 3
    assert json.loads(record.read_text())["gmacs"] == {"fp32": 110.0, "int8": 300.0}
    record.write_text(json.dumps({**json.loads(record.read_text()), "version": 0}))  # an older VERSION's: dropped
    monkeypatch.setattr(peaks_module, "measure_peaks", lambda threads, priority: MachinePeaks(2, {"fp32": 50.0}))
    assert machine_peaks(2, record=record).gmacs == {"fp32": 50.0}


def test_a_gemm_under_a_tenth_of_fp32s_rate_is_a_reference_loop_with_no_peak() -> None:
    """Measured on an AVX2-only EPYC: int8 1.4 GMAC/s and bf16 0.62 against fp32 58; an optimized int8
    kernel runs faster than fp32, a widened bf16 one about as fast."""
    why = reference_loop("int8", 1.4, 58.0)
    assert why is not None and "1.4 GMAC/s" in why and "2.4%" in why and "reference loop" in why
    assert reference_loop("bf16", 5.9, 58.0) is None  # just over the tenth
    assert reference_loop("int8", 200.0, 58.0) is None
    assert reference_loop("fp32", 0.1, 58.0) is None and reference_loop("int8", 1.4, None) is None


def test_the_gemm_is_halved_only_where_one_call_would_take_over_a_second() -> None:
    assert gemm_size(9.0) == 2048  # 8.6 GMAC in under a second: every optimized kernel keeps 2048
    assert gemm_size(1.0) == 512  # 1024^3 = 1.07 GMAC would take 1.07 s
    assert gemm_size(1e-6) == peaks_module.PROBE_SIZE


def test_a_reference_loop_is_probed_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 GEMM probed at a fiftieth of fp32's rate is never timed at full size (that took 478 s of
    every run's start on an AVX2-only CPU); it is missing, with why, and the others are measured."""
    monkeypatch.setattr(peaks_module, "GEMM_SIZE", 128)
    monkeypatch.setattr(peaks_module, "COPY_MIB", 4)
    probes = {"fp32": 50.0, "int8": 1.0, "bf16": 45.0}
    monkeypatch.setattr(peaks_module, "_probe_gmacs", probes.__getitem__)
    measured: list[tuple[str, int]] = []
    real_gemm = peaks_module._gemm

    def gemm(precision: str, n: int = 128):
        measured.append((precision, n))
        return real_gemm(precision, n)

    monkeypatch.setattr(peaks_module, "_gemm", gemm)
    found = measure_peaks(1)
    assert measured == [("fp32", 128), ("bf16", 128)]
    assert set(found.gmacs) == {"fp32", "bf16"} and "reference loop" in found.missing["int8"]
    assert found.gemm_sizes == {"fp32": 128, "bf16": 128}
    assert MachinePeaks.from_record(found.record()).gemm_sizes == {"fp32": 128, "bf16": 128}


@pytest.mark.integration
def test_a_real_measurement_at_small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peaks_module, "GEMM_SIZE", 128)
    monkeypatch.setattr(peaks_module, "COPY_MIB", 4)
    found = measure_peaks(1)
    assert set(found.gmacs) | set(found.missing) == {"fp32", "int8", "bf16"}
    assert all(v > 0 for v in found.gmacs.values()) and "fp32" in found.gmacs
    assert found.bandwidth_gbs is not None and found.bandwidth_gbs > 0
    assert found.measure_s is not None and found.measured_at
