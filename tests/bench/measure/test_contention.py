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
    counted_cycles,
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


def test_only_cycles_quiet_for_every_cell_count_and_only_when_they_hold_each_minimum():
    quiet, busy = _window(100, 1), _window(100, 40)
    a = [
        TimedRound(10, 0.3, 8.6, quiet),
        TimedRound(10, 0.3, 10.6, quiet),  # the machine ran slow before this round
        TimedRound(10, 0.3, 8.7, busy),  # other processes took 40% of the CPU
        TimedRound(10, 0.3, 8.8, quiet),
        TimedRound(10, 0.3, 8.6, quiet),
    ]
    b = [
        TimedRound(5, 0.3, 8.6, quiet),
        TimedRound(5, 0.3, 8.6, quiet),
        TimedRound(5, 0.3, 8.6, quiet),
        TimedRound(5, 0.3, 9.9, quiet),  # slow before b's round: the whole cycle is left out, a's round too
        TimedRound(5, 0.3, 8.6, quiet),
    ]
    assert counted_cycles([a, b], 8.6, min_calls=10, min_seconds=0.6) == [0, 4]
    assert counted_cycles([a], 8.6, min_calls=10, min_seconds=0.6) == [0, 3, 4]
    assert counted_cycles([a, b], 8.6, min_calls=15, min_seconds=0.6) is None  # b has only 10 quiet calls
    assert counted_cycles([a, b], 8.6, min_calls=15, min_seconds=0.6, share=0.5) == [0, 4]  # half the minimum
    assert counted_cycles([a, b], None, min_calls=10, min_seconds=0.6) == [0, 1, 3, 4]  # no kernel: CPU decides
    assert counted_cycles([], 8.6, min_calls=1, min_seconds=0.0) is None
    assert MAX_TIMING_FACTOR >= 2


def test_the_kernel_slowdown_is_the_median_of_the_counted_rounds_not_one_spike():
    kernel = ReferenceKernel.__new__(ReferenceKernel)
    kernel.quietest_ms = 8.0
    contention = Contention.from_windows(_window(100, 1, 95), 0.1, [8.0, 8.4, 16.0], kernel)
    assert contention.reference_kernel_ms == 8.4
    assert contention.reference_slowdown == pytest.approx(1.05) and contention.timing_quality == "ok"


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
