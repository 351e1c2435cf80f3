"""The contention signals and the verdict built from them."""

import json
import os
import time

import pytest

from bench.measure.contention import (
    IDLE_TICKS,
    MAX_TIMING_FACTOR,
    Contention,
    CpuCounters,
    CpuWindows,
    TimedRound,
    counted_cycles,
    cycle_verdicts,
    left_out_summary,
    robust_spread,
)
from bench.measure.reference_kernel import ReferenceKernel
from bench.results.speedup import ratios_trusted


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


def test_the_reader_is_not_another_process():
    """The run's parent reads the counters around each round and waits on the worker meanwhile: its own CPU
    in the window is left out of `other`, as the timed process's is (and not twice when it is the timed one)."""
    before = CpuCounters(total=1000, busy=500, steal=0, process=100, wall=0.0, reader=50)
    after = CpuCounters(total=1040, busy=530, steal=0, process=120, wall=0.2, reader=58)
    window = CpuWindows.between(before, after)
    assert (window.total, window.other, window.process) == (40, 2, 20)  # 30 busy - 20 timed - 8 the reader's
    assert CpuCounters.read(os.getpid()).reader == 0  # reading itself: its ticks are the timed process's
    parent = CpuCounters.read(os.getppid())
    assert parent is not None and parent.reader >= 0


def test_a_short_rounds_few_ticks_are_judged_over_its_cycle():
    """A 20-ms round on 2 vCPUs is 3-8 ticks of `/proc/stat`, and an idle machine shows up to IDLE_TICKS of
    others' (or stolen) CPU in one: 2 of 6 ticks (33%) is not a busy machine; 3 ticks over the share are.
    A busy process spread over a cycle's short rounds still adds up to a reading over the cycle."""
    assert IDLE_TICKS == 2
    assert TimedRound(10, 0.02, 8.6, _window(6, 2)).busy_reason() is None
    assert TimedRound(10, 0.02, 8.6, _window(6, 0, steal=1)).busy_reason() is None
    assert str(TimedRound(10, 0.02, 8.6, _window(20, 3)).busy_reason()) == "other processes used 15% of the CPU"
    assert str(TimedRound(10, 0.02, 8.6, _window(8, 0, steal=3)).busy_reason()) == "38% CPU steal"
    assert _window(60, 6).busy_reason() is None and _window(60, 7).busy_reason() is not None  # 10%: the share
    spread = [[TimedRound(10, 0.02, 8.6, _window(7, 2))] for _ in range(3)]  # 2 ticks each, 6 of 21 in all
    assert str(cycle_verdicts(spread, 8.6)[0]) == "other processes used 29% of the CPU"
    stray = [[TimedRound(10, 0.02, 8.6, _window(7, ticks))] for ticks in (1, 0, 1)]  # 2 of 21: an idle cycle
    assert cycle_verdicts(stray, 8.6) == [None]


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
    assert slow == "noisy: too few quiet rounds, 8% CPU steal, slow host phase (reference kernel x1.23 its fast level)"
    left_out = "3 of 12 cycles left out: slow host phase in 3 (reference kernel up to x1.31)"
    said = Contention(1.0, 0.0, 90.0, 1.0, 8.0, 1.0, True, left_out, round_spread=0.14).timing_quality
    assert said == f"noisy: too few quiet rounds ({left_out}), rounds disagreed (their medians spread 14%)"
    assert "busy" not in said  # nothing else ran: the reasons say what was seen


def test_rounds_that_disagree_make_a_row_noisy_and_one_outlying_round_does_not():
    steady = Contention.from_windows(_window(100, 1, 95), 0.1, [8.0], None, round_p50_ms=[5.0, 5.1, 4.9, 5.0, 9.0])
    assert steady.round_spread == pytest.approx(1.4826 * 0.1 / 5.0) and steady.timing_quality == "ok"
    drifting = Contention.from_windows(_window(100, 1, 95), 0.1, [8.0], None, round_p50_ms=[5.0, 5.0, 6.0, 6.2, 6.5])
    assert drifting.timing_quality.startswith("noisy: rounds disagreed (their medians spread ")
    assert robust_spread([1.0, 2.0]) is None  # too few rounds to say
    # the row's latency is flagged; its paired ratios stand, unless another reason comes with it
    assert ratios_trusted(drifting.timing_quality)
    slow = Contention(1.0, 0.0, 90.0, 1.0, 8.0, 1.3, round_spread=0.14)  # kernel x1.3: a slow host phase too
    assert "rounds disagreed" in slow.timing_quality and not ratios_trusted(slow.timing_quality)


def test_a_cycle_is_judged_by_its_readings_median_and_every_rounds_cpu():
    quiet, busy, stolen = _window(100, 1), _window(100, 40), _window(100, 1, steal=9)
    a = [
        TimedRound(10, 0.3, 8.6, quiet),
        TimedRound(10, 0.3, 10.6, quiet),  # the machine ran slow before this round...
        TimedRound(10, 0.3, 8.7, busy),  # other processes took 40% of the CPU
        TimedRound(10, 0.3, 8.8, quiet),
        TimedRound(10, 0.3, 8.6, quiet),
    ]
    b = [
        TimedRound(5, 0.3, 8.6, quiet),
        TimedRound(5, 0.3, 10.2, quiet),  # ...and before b's: the cycle's median is x1.21
        TimedRound(5, 0.3, 8.6, quiet),
        TimedRound(5, 0.3, 9.9, quiet),  # one slow reading of two: the median x1.08 is the fast state
        TimedRound(5, 0.3, 8.6, stolen),  # the hypervisor took 9%
    ]
    verdicts = cycle_verdicts([a, b], 8.6)
    assert [str(v) if v else None for v in verdicts] == [
        None,
        "slow host phase (reference kernel x1.21)",
        "other processes used 40% of the CPU",
        None,
        "9% CPU steal",
    ]
    assert left_out_summary(verdicts) == (
        "3 of 5 cycles left out: slow host phase in 1 (reference kernel up to x1.21); "
        "other processes in 1 (up to 40% of the CPU); CPU steal in 1 (up to 9%)"
    )
    assert counted_cycles([a, b], 8.6, min_calls=10, min_seconds=0.6) == [0, 3]
    both = [[TimedRound(10, 0.3, 15.0, busy)], [TimedRound(10, 0.3, 15.0, quiet)]]
    assert str(cycle_verdicts(both, 8.6)[0]) == "other processes used 40% of the CPU"  # the kernel's cause
    busy_row = Contention(40.0, 0.0, 55.0, 1.0, 15.0, 1.74).timing_quality
    assert busy_row == "noisy: other processes used 40% of the CPU, reference kernel x1.74 its fast level"
    assert counted_cycles([a], 8.6, min_calls=10, min_seconds=0.6) == [0, 3, 4]  # b was the stolen one
    assert counted_cycles([a, b], 8.6, min_calls=15, min_seconds=0.6) is None  # b has only 10 quiet calls
    assert counted_cycles([a, b], 8.6, min_calls=15, min_seconds=0.6, share=0.5) == [0, 3]  # half the minimum
    assert counted_cycles([a, b], None, min_calls=10, min_seconds=0.6) == [0, 1, 3]  # no kernel: CPU decides
    assert counted_cycles([], 8.6, min_calls=1, min_seconds=0.0) is None
    assert MAX_TIMING_FACTOR >= 2


def test_the_kernel_slowdown_is_the_median_of_the_counted_rounds_not_one_spike():
    kernel = ReferenceKernel.__new__(ReferenceKernel)
    kernel.reference_ms = 8.0
    contention = Contention.from_windows(_window(100, 1, 95), 0.1, [8.0, 8.4, 16.0], kernel)
    assert contention.reference_kernel_ms == 8.4
    assert contention.reference_slowdown == pytest.approx(1.05) and contention.timing_quality == "ok"


def test_reference_kernel_keeps_the_machines_readings_and_its_fast_level_is_a_low_quantile(tmp_path):
    record = tmp_path / "machine" / "kernel.json"
    kernel = ReferenceKernel(1, record)
    first = kernel.measure()
    assert first > 0 and kernel.reference_ms == first and record.is_file()
    again = ReferenceKernel(1, record)  # the next run starts from this machine's history
    assert again.reference_ms == first
    assert again.slowdown(first * 1.3) == pytest.approx(1.3)
    # one freak fast reading among many does not become the level (a minimum would keep it for ever)
    record.write_text(
        json.dumps({"version": ReferenceKernel.VERSION, "readings": [5.0] + [8.0 + i / 100 for i in range(19)]})
    )
    assert ReferenceKernel(1, record).reference_ms == pytest.approx(8.028, abs=1e-3)
    waited = ReferenceKernel(1, record)
    waited.measure(keep=False)  # a wait's reading judges, but joins neither the level nor the history
    assert (
        waited.reference_ms == pytest.approx(8.028, abs=1e-3) and len(json.loads(record.read_text())["readings"]) == 20
    )
    record.write_text('{"version": 1, "quietest_ms": 1.0}')  # another kernel's history does not apply
    assert ReferenceKernel(1, record).reference_ms is None
