"""The machine's peaks, the yardstick of a row's `pct_of_peak`: measured (a large GEMM in fp32, int8 and bf16,
and a streaming copy for the memory bandwidth) and theoretical (from the instruction set, the cores and the
frequency), both in env.json under `peaks`.

Measured at every run's start (about 1 s on two cores) and kept in the cache as the best each precision
has reached over the runs on this machine and thread count (`peaks_record`, keyed like the reference
kernel's record: the machine's fingerprint, this module's VERSION and torch's version): a peak is a
maximum, so a measurement taken while something else ran cannot lower the yardstick, and the next quiet
run raises it. The record says over how many runs and since when.

The GEMMs run through torch, the runtime every run has: fp32 and bf16 `torch.matmul` (oneDNN / MKL),
int8 `torch._int_mm` (int8 x int8 -> int32). ONNX Runtime's and OpenVINO's own kernels may reach more,
which would show as a share of peak above 100%.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

VERSION = 2  # bump when a measurement changes: older records then no longer apply
GEMM_SIZE = 2048  # square: 8.6 GMAC a call, large enough to leave every cache and amortize the threads' start
GEMM_REPEATS = 5  # timed calls after one warm-up; the peak is the fastest
# Each GEMM is first timed once at this size. Why: torch has optimized int8 and bf16 GEMMs only where the
# CPU has the instructions for them; elsewhere it runs a reference loop (measured here, an AVX2-only AMD
# EPYC on two threads: `torch._int_mm` 1.1 GMAC/s, bf16 `torch.matmul` 0.6, fp32 42), and 2048^3 MACs at
# that rate made the peaks take 478 s at the start of every run.
PROBE_SIZE = 256
# An int8 or bf16 GEMM under this share of the fp32 GEMM's rate is such a reference loop: no yardstick for
# a runtime's own int8 kernels (ONNX Runtime's QDQ unet ran at 79-105 GMAC/s there), so that precision has no
# peak, with why. An optimized int8 GEMM runs faster than fp32, a widened bf16 one about as fast.
REFERENCE_LOOP_SHARE = 0.1
# The largest size whose one call would take at most this long (halving from GEMM_SIZE): only a kernel
# under 8.6 GMAC/s gets a smaller GEMM, so every optimized one is measured at GEMM_SIZE.
MAX_CALL_S = 1.0
COPY_MIB = 256  # the streaming copy's buffer, far beyond any last-level cache
COPY_REPEATS = 5
PRECISIONS = ("fp32", "int8", "bf16")
METHOD = (
    f"fastest of {GEMM_REPEATS} {GEMM_SIZE}x{GEMM_SIZE} GEMMs after a warm-up (smaller where one call would take "
    f"over {MAX_CALL_S:g} s: `gemm_sizes`): fp32 and bf16 torch.matmul, int8 torch._int_mm; an int8 or bf16 GEMM "
    f"under {REFERENCE_LOOP_SHARE:.0%} of fp32's rate at {PROBE_SIZE}x{PROBE_SIZE} is a reference loop and gives no "
    f"peak; bandwidth: fastest of {COPY_REPEATS} copies of {COPY_MIB} MiB (torch copy_), read + write"
)

# Theoretical MACs per cycle per core, by instruction set, the first the CPU's flags have. One FMA is one
# MAC; two FMA units per core, as on Intel's server cores since Skylake-SP (Xeon Gold 6xxx and Platinum:
# Bronze, Silver and some Gold 5xxx have one, half of this) and AMD's Zen 2 to Zen 5 (Intel 64 and IA-32
# Architectures Optimization Reference Manual; AMD's Software Optimization Guides; Agner Fog's instruction
# tables). Zen 4 runs a 512-bit instruction as two 256-bit halves, which the flags cannot tell: the figures
# are the upper bound the flags allow, and a measured peak above one means the frequency is above the one used.
FP32_MACS_PER_CYCLE: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("AVX-512", ("avx512f",), 32),  # 16 fp32 lanes x 2 FMA units
    ("AVX2+FMA", ("avx2", "fma"), 16),  # 8 lanes x 2 FMA units
    ("SSE", (), 4),  # 4 lanes, a multiply and an add port, no FMA
)
INT8_MACS_PER_CYCLE: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("AMX-INT8", ("amx_int8",), 1024),  # TMUL: 2048 int8 ops a cycle a core (Intel, Sapphire Rapids)
    ("AVX-512 VNNI", ("avx512_vnni",), 128),  # vpdpbusd: 64 u8 x s8 MACs a 512-bit instruction, 2 a cycle
    ("AVX-VNNI", ("avx_vnni",), 64),  # the 256-bit vpdpbusd
    # without VNNI: vpmaddubsw, vpmaddwd, vpaddd, three instructions for VNNI's one (Intel, "Deep Learning Boost")
    ("AVX-512BW", ("avx512bw",), 128 / 3),
    ("AVX2", ("avx2",), 64 / 3),
)
BF16_MACS_PER_CYCLE: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("AMX-BF16", ("amx_bf16",), 512),  # TMUL: 1024 bf16 ops a cycle a core
    ("AVX-512 BF16", ("avx512_bf16",), 64),  # vdpbf16ps: 32 bf16 pairs a 512-bit instruction, 2 a cycle
)  # without them bf16 is widened to fp32 and multiplied at the fp32 rate
_TABLES = {"fp32": FP32_MACS_PER_CYCLE, "int8": INT8_MACS_PER_CYCLE, "bf16": BF16_MACS_PER_CYCLE}


def _rate(precision: str, flags: set[str]) -> tuple[str, float] | None:
    """(instruction set, MACs a cycle a core) the flags allow for `precision`; bf16 falls back to fp32's."""
    found = next(((isa, macs) for isa, needs, macs in _TABLES[precision] if set(needs) <= flags), None)
    if found is None and precision == "bf16":
        isa, macs = _rate("fp32", flags) or ("SSE", 4.0)
        return f"{isa} (bf16 widened to fp32)", macs
    return found


def theoretical_peaks(
    flags: list[str], physical_cores: int | None, mhz: float | None, frequency_source: str, threads: int
) -> dict[str, Any]:
    """Per precision: the instruction set, MACs a cycle a core and GMAC/s on every physical core and on the
    run's threads (None where the frequency or the cores are unknown); env.json's `peaks.theoretical`."""
    flagged, cores = set(flags), physical_cores
    precisions: dict[str, Any] = {}
    for precision in PRECISIONS:
        rate = _rate(precision, flagged)
        if rate is None:
            precisions[precision] = {"isa": None, "note": "no int8 dot-product or AVX2 instructions"}
            continue
        isa, per_cycle = rate
        entry: dict[str, Any] = {
            "isa": isa,
            "macs_per_cycle_per_core": per_cycle,
            "gmacs": None,
            "gmacs_at_threads": None,
        }
        if mhz is not None and cores:
            entry["gmacs"] = per_cycle * cores * mhz / 1e3
            entry["gmacs_at_threads"] = per_cycle * min(threads, cores) * mhz / 1e3
        precisions[precision] = entry
    return {
        "physical_cores": cores,  # None: /proc/cpuinfo names no core ids
        "mhz": mhz,
        "frequency_source": frequency_source,
        "precisions": precisions,
        "assumption": "2 FMA units a core, every core at this frequency: an upper bound from the CPU's flags",
    }


def machine_theoretical_peaks(threads: int) -> dict[str, Any]:
    """`theoretical_peaks` of this machine (/proc/cpuinfo's flags and cores, cpufreq's maximum frequency)."""
    from bench.environment import cpu_max_mhz, machine_identity

    identity = machine_identity(threads)
    mhz, source = cpu_max_mhz()
    return theoretical_peaks(identity.get("cpu_flags") or [], identity.get("physical_cores"), mhz, source, threads)


@dataclass(frozen=True)
class MachinePeaks:
    """The measured peaks at the run's threads: GMAC/s per precision (`gmacs`), why a precision has none
    (`missing`), the streaming copy's GB/s; `status` is `ok`, or `unavailable: <why>` where nothing was
    measured (a CUDA run, a Ray driver)."""

    threads: int
    gmacs: Mapping[str, float] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)
    bandwidth_gbs: float | None = None
    measure_s: float | None = None  # what measuring cost, when it was done
    measured_at: str = ""
    status: str = "ok"
    runs: int = 1  # the runs whose measurements the peaks are the best of (`best_of`)
    first_measured_at: str = ""  # the earliest of those; "" for one run
    gemm_sizes: Mapping[str, int] = field(default_factory=dict)  # n of the n x n GEMM each peak was measured at

    @classmethod
    def unavailable(cls, threads: int, reason: str) -> MachinePeaks:
        return cls(threads, status=f"unavailable: {reason}")

    def peak(self, precision: str) -> tuple[float | None, str]:
        """The measured peak `precision` is judged against and what it is, or (None, why there is none)."""
        if self.status != "ok":
            return None, self.status.removeprefix("unavailable: ")
        if precision in self.gmacs:
            return self.gmacs[precision], f"{precision} GEMM, {self.threads} thread(s)"
        return None, f"no measured {precision} peak: {self.missing.get(precision, 'not measured')}"

    def record(self) -> dict[str, Any]:
        """What env.json's `peaks.measured` and the cached record hold."""
        return {
            "version": VERSION,
            "status": self.status,
            "threads": self.threads,
            "gmacs": dict(self.gmacs),
            "missing": dict(self.missing),
            "bandwidth_gbs": self.bandwidth_gbs,
            "method": METHOD,
            "measure_s": self.measure_s,
            "measured_at": self.measured_at,
            "runs": self.runs,
            "first_measured_at": self.first_measured_at,
            "gemm_sizes": dict(self.gemm_sizes),
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> MachinePeaks | None:
        """A record written by this VERSION, else None (then the peaks are measured again)."""
        if not isinstance(data, Mapping) or data.get("version") != VERSION or data.get("status") != "ok":
            return None
        gmacs = {str(k): float(v) for k, v in (data.get("gmacs") or {}).items() if isinstance(v, (int, float))}
        bandwidth = data.get("bandwidth_gbs")
        return cls(
            threads=int(data["threads"]),
            gmacs=gmacs,
            missing={str(k): str(v) for k, v in (data.get("missing") or {}).items()},
            bandwidth_gbs=float(bandwidth) if isinstance(bandwidth, (int, float)) else None,
            measure_s=data.get("measure_s"),
            measured_at=str(data.get("measured_at") or ""),
            runs=int(data.get("runs") or 1),
            first_measured_at=str(data.get("first_measured_at") or ""),
            gemm_sizes={str(k): int(v) for k, v in (data.get("gemm_sizes") or {}).items() if isinstance(v, int)},
        )


def _fastest(call: Callable[[], Any], repeats: int) -> float:
    """The fastest of `repeats` timed calls after one untimed one, in seconds."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _gemm(precision: str, n: int = GEMM_SIZE) -> Callable[[], Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    if precision == "int8":
        a, b = (torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=generator) for _ in range(2))
        return lambda: torch._int_mm(a, b)
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    a, b = (torch.randn(n, n, generator=generator).to(dtype) for _ in range(2))
    return lambda: torch.matmul(a, b)


def _probe_gmacs(precision: str) -> float:
    """GMAC/s of one call at PROBE_SIZE after an untimed one: what sizes the real measurement, and tells a
    reference loop from an optimized kernel in milliseconds instead of minutes."""
    return PROBE_SIZE**3 / max(_fastest(_gemm(precision, PROBE_SIZE), 1), 1e-9) / 1e9


def gemm_size(probe_gmacs: float) -> int:
    """GEMM_SIZE, halved while one call at the probed rate would take over MAX_CALL_S (never under PROBE_SIZE)."""
    n = GEMM_SIZE
    while n > PROBE_SIZE and n**3 / (probe_gmacs * 1e9) > MAX_CALL_S:
        n //= 2
    return n


def reference_loop(precision: str, gmacs: float, fp32_gmacs: float | None) -> str | None:
    """Why `precision`'s GEMM is no yardstick (a reference loop: under REFERENCE_LOOP_SHARE of fp32's rate),
    or None."""
    if precision == "fp32" or not fp32_gmacs or gmacs >= REFERENCE_LOOP_SHARE * fp32_gmacs:
        return None
    return (
        f"torch's {precision} GEMM ran at {gmacs:.2g} GMAC/s ({PROBE_SIZE}x{PROBE_SIZE}), {gmacs / fp32_gmacs:.1%} "
        f"of its fp32 GEMM's rate: a reference loop, no optimized {precision} kernel for this CPU"
    )


def _copy_gbs() -> float:
    """GB/s of the fastest copy of a `COPY_MIB` buffer, counted as read + write (a cache that allocates on
    write reads the target too: a third more traffic than counted)."""
    import torch

    source = torch.ones(COPY_MIB * 2**20 // 4)
    target = torch.empty_like(source)
    return 2 * source.numel() * 4 / _fastest(lambda: target.copy_(source), COPY_REPEATS) / 1e9


def measure_peaks(threads: int, priority: str = "normal") -> MachinePeaks:
    """Each precision's GEMM and the streaming copy on `threads` threads (at `priority`, as timed rounds
    run); a precision whose GEMM fails, or is a reference loop (`reference_loop`), is `missing`, with why."""
    import torch

    from bench.errors import one_line
    from bench.measure.priority import timed_at

    started = time.perf_counter()
    gmacs: dict[str, float] = {}
    missing: dict[str, str] = {}
    sizes: dict[str, int] = {}
    bandwidth = None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with timed_at(priority), torch.inference_mode():
            for precision in PRECISIONS:  # fp32 first: the others are told from a reference loop by it
                try:
                    probe = _probe_gmacs(precision)
                    if why := reference_loop(precision, probe, gmacs.get("fp32")):
                        missing[precision] = why
                        continue
                    n = sizes[precision] = gemm_size(probe)
                    gmacs[precision] = n**3 / _fastest(_gemm(precision, n), GEMM_REPEATS) / 1e9
                except Exception as exc:  # an op this torch build lacks on this CPU: no peak, and why
                    missing[precision] = one_line(exc, 200)
            bandwidth = _copy_gbs()
    finally:
        torch.set_num_threads(previous)
    return MachinePeaks(
        threads,
        gmacs,
        missing,
        bandwidth,
        measure_s=time.perf_counter() - started,
        measured_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        gemm_sizes=sizes,
    )


def peaks_record(threads: int) -> Path:
    """Where this machine's measured peaks at `threads` threads are kept between runs."""
    from bench.cache import cache_root, library_versions, stable_hash
    from bench.environment import machine_fingerprint, machine_identity

    key = stable_hash(
        {
            "machine": machine_fingerprint(machine_identity(threads)),
            "peaks": VERSION,
            "torch": library_versions(("torch",)),
        }
    )
    return cache_root() / "machine" / f"peaks--{key}--t{threads}.json"


def best_of(measured: MachinePeaks, kept: MachinePeaks | None) -> MachinePeaks:
    """Per precision (and for the bandwidth) the higher of this run's measurement and the record's: a peak
    is the most the machine has shown, so one taken while something else ran only lowers nothing."""
    if kept is None or kept.threads != measured.threads:
        return measured
    gmacs = {p: max(v, kept.gmacs.get(p, 0.0)) for p, v in measured.gmacs.items()}
    gmacs.update({p: v for p, v in kept.gmacs.items() if p not in gmacs})
    bandwidths = [b for b in (measured.bandwidth_gbs, kept.bandwidth_gbs) if b is not None]
    return replace(
        measured,
        gmacs=gmacs,
        missing={p: why for p, why in measured.missing.items() if p not in gmacs},
        bandwidth_gbs=max(bandwidths) if bandwidths else None,
        runs=kept.runs + 1,
        first_measured_at=kept.first_measured_at or kept.measured_at,
        gemm_sizes={**kept.gemm_sizes, **measured.gemm_sizes},
    )


def machine_peaks(threads: int, priority: str = "normal", record: Path | None = None) -> MachinePeaks:
    """This run's measurement (about a second), raised to the best `record` holds from earlier runs on
    this machine, and kept there: the yardstick only grows towards what the machine can do."""
    kept = None
    if record is not None:
        try:
            kept = MachinePeaks.from_record(json.loads(record.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            kept = None
    best = best_of(measure_peaks(threads, priority), kept)
    if record is not None:
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(best.record()))
        except OSError:
            pass  # a read-only cache: this run's measurement alone next time too
    return best
