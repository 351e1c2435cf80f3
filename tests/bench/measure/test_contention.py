"""The contention signals and the verdict built from them."""

import os
import time

import pytest

from bench.measure.contention import (
    MAX_TIMING_FACTOR,
    Contention,
    CpuCounters,
    CpuWindows,
    ReferenceKernel,
    TimedRound,
    counted_rounds,
)


def _window(total: int, other: int, process: int = 0, steal: int = 0) -> CpuWindows:
    return CpuWindows(total=total, other=other, steal=steal, process=process, wall_s=1.0, windows=1)


def test_cpu_counters_see_this_process_work():
    before = CpuCounters.read(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = CpuCounters.read(os.getpid())
    window = CpuWindows.between(before, after)
    assert window.process >= 20  # 0.3 s of our own CPU, in 10 ms ticks
    assert window.total >= window.process and window.windows == 1
    assert CpuCounters.read(2**22 + 12345) is None  # no such process: no numbers, no crash


def test_windows_add_up_and_give_percentages():
    total = CpuWindows.summed([_window(100, 5, 90), _window(100, 25, 70)])
    assert (total.total, total.other, total.process, total.windows) == (200, 30, 160, 2)
    contention = Contention.from_windows(total, 1.5, [9.0, 9.2], None)
    assert contention.cpu_other_pct == pytest.approx(15.0) and contention.cpu_timed_pct == pytest.approx(80.0)
    assert contention.timing_quality == "noisy: other processes used 15% of the CPU"
    quiet = Contention.from_windows(_window(100, 2, 95), 0.1, [9.0], None)
    assert quiet.timing_quality == "ok" and quiet.reference_kernel_ms == 9.0


def test_the_verdict_names_every_reason_and_admits_when_nothing_was_measured():
    assert Contention(None, None, None, None).timing_quality.startswith("unmeasured")
    slow = Contention(1.0, 8.0, 90.0, 1.0, 10.6, 1.23, too_few_quiet_rounds=True).timing_quality
    assert slow == ("noisy: too few quiet rounds, 8% CPU steal, reference kernel x1.23 slower")


def test_only_quiet_rounds_count_and_only_when_they_hold_the_minimum():
    quiet, slow, busy = _window(100, 1), _window(100, 1), _window(100, 40)
    rounds = [
        TimedRound(10, 0.3, 8.6, quiet),
        TimedRound(10, 0.3, 10.6, slow),
        TimedRound(10, 0.3, 8.7, busy),
        TimedRound(10, 0.3, 8.8, quiet),
    ]
    assert counted_rounds(rounds, 8.6, min_calls=20, min_seconds=0.6) == [0, 3]
    assert counted_rounds(rounds, 8.6, min_calls=30, min_seconds=0.6) is None  # only 20 quiet calls
    assert counted_rounds(rounds, None, min_calls=30, min_seconds=0.85) == [0, 1, 3]  # no kernel: CPU decides
    assert MAX_TIMING_FACTOR >= 2


def test_reference_kernel_keeps_the_machines_quietest_time(tmp_path):
    record = tmp_path / "machine" / "kernel.json"
    kernel = ReferenceKernel(1, record)
    first = kernel.measure()
    assert first > 0 and kernel.quietest_ms == first and record.is_file()
    again = ReferenceKernel(1, record)  # the next run starts from this machine's history
    assert again.quietest_ms == first
    assert again.slowdown(first * 1.3) == pytest.approx(1.3)
    record.write_text('{"version": 0, "quietest_ms": 1.0}')  # another kernel's history does not apply
    assert ReferenceKernel(1, record).quietest_ms is None
