"""Interleaved timing: every cell times one round per cycle, in a shuffled order, and the group decides
which cycles count."""

import pytest

from bench.measure.contention import CpuWindows, TimedRound
from bench.measure.scenarios import ScenarioConfig
from bench.run import rounds
from bench.run.cell import GroupTiming
from bench.run.rounds import time_cells

QUIET_MS, SLOW_MS = 1.0, 1.5


class FakeKernel:
    """Its readings in turn (then quiet ones); each takes a second of `clock`."""

    reference_ms = QUIET_MS
    clock = 0.0

    def __init__(self, readings: list[float] | None = None) -> None:
        self.readings = list(readings or [])

    def measure(self, keep: bool = True) -> float:
        FakeKernel.clock += 1.0
        return self.readings.pop(0) if self.readings else QUIET_MS


class FakeTiming:
    min_iters, min_time_s = 30, 0.3
    quiet_wait_s = 0.0
    mode = "interleaved"
    speedup_precision: float | None = None


class FakeSpec:
    timing = FakeTiming()
    backend, precision = "some-backend", "int8"
    scenario = ScenarioConfig()


class ReferenceSpec(FakeSpec):
    backend, precision = "torch-eager", "fp32"


class FakeCell:
    """A cell whose rounds each time 10 calls in 0.1 s; it can fail in a given cycle."""

    spec = FakeSpec()

    def __init__(
        self, name: str, log: list[str], fail_in_cycle: int | None = None, p50s: list[float] | None = None
    ) -> None:
        self.name, self.log, self.fail_in_cycle = name, log, fail_in_cycle
        self.p50s = p50s  # its rounds' p50s in turn, the last repeated (None: no p50)
        self.rounds: list[TimedRound] = []
        self.failure: str | None = None

    def has_minimum(self) -> bool:
        return sum(r.calls for r in self.rounds) >= 30 and sum(r.seconds for r in self.rounds) >= 0.3

    def median_p50_ms(self, cycles: list[int] | None) -> float | None:
        return 4.0 if isinstance(self.spec, ReferenceSpec) else None

    def time_round(self, kernel: FakeKernel, position: int | None = None) -> None:
        if self.fail_in_cycle == len(self.rounds):
            self.failure = f"{self.name} failed"
            return
        window = CpuWindows(total=100, other=1, process=95, wall_s=0.1, windows=1)
        p50 = None if self.p50s is None else self.p50s[min(len(self.rounds), len(self.p50s) - 1)]
        self.rounds.append(TimedRound(10, 0.1, kernel.measure(), window, None, p50))
        self.log.append(self.name)

    def measure(self, timing: GroupTiming) -> None:
        self.log.append(f"{self.name} evaluated")

    def finish(self, timing: GroupTiming) -> str:
        short = " (too few quiet)" if timing.too_few_quiet else ""
        self.timing = timing
        return self.failure or f"{self.name}: {len(self.rounds)} rounds, counted {timing.counted}{short}"


def test_every_cell_is_told_the_fp32_reference_p50_over_the_counted_cycles():
    """What an int8 cell slower than fp32 eager is profiled by (bench.run.cell.MeasuringCell._profile_calls)."""
    reference, other = FakeCell("eager", []), FakeCell("int8", [])
    reference.spec = ReferenceSpec()  # type: ignore[assignment]
    time_cells([reference, other], FakeKernel())  # type: ignore[arg-type]
    assert reference.timing.reference_p50_ms == other.timing.reference_p50_ms == 4.0
    alone = FakeCell("int8", [])
    time_cells([alone], FakeKernel())  # type: ignore[arg-type]
    assert alone.timing.reference_p50_ms is None  # no fp32 eager in the group: nothing to be slower than


def test_a_scenario_runs_after_every_cells_evaluation_and_before_any_profile(monkeypatch):
    """--scenario offline|server: evaluations first (the session's memory and quality read as without it),
    then the group's scenario on the cells still loaded, then each cell's profile and row."""
    log: list[str] = []

    class OfflineSpec(FakeSpec):
        scenario = ScenarioConfig("offline")

    cells = [FakeCell("a", log), FakeCell("b", log)]
    for cell in cells:
        cell.spec = OfflineSpec()  # type: ignore[assignment]
    monkeypatch.setattr(rounds, "run_scenario", lambda live, kernel, say: log.append(f"scenario of {len(live)}"))
    time_cells(cells, FakeKernel())  # type: ignore[arg-type]
    assert log[-3:] == ["a evaluated", "b evaluated", "scenario of 2"]
    plain = [FakeCell("a", []), FakeCell("b", [])]
    time_cells(plain, FakeKernel())  # type: ignore[arg-type]
    assert not any("evaluated" in entry for entry in plain[0].log)  # single-stream: finish alone, as before


def test_cells_take_turns_in_shuffled_cycles_until_each_has_its_minimum():
    log: list[str] = []
    cells = [FakeCell("a", log), FakeCell("b", log), FakeCell("c", log)]
    outcomes = time_cells(cells, FakeKernel())  # type: ignore[arg-type]
    assert outcomes == [f"{n}: 3 rounds, counted [0, 1, 2]" for n in "abc"]  # in the cells' order
    # one turn each per cycle, in a seeded shuffle: no backend always runs right after the same one
    assert log == ["a", "c", "b", "c", "b", "a", "a", "b", "c"]


def test_a_slow_cycle_is_left_out_for_every_cell():
    # cycle 1's readings are 1.0 and 1.5 (median x1.25): the group times on until 3 quiet cycles
    cells = [FakeCell("a", []), FakeCell("b", [])]
    outcomes = time_cells(cells, FakeKernel([QUIET_MS, QUIET_MS, SLOW_MS]))  # type: ignore[arg-type]
    assert outcomes == ["a: 4 rounds, counted [0, 2, 3]", "b: 4 rounds, counted [0, 2, 3]"]


def test_one_slow_reading_among_a_cycles_seven_does_not_leave_it_out():
    # the cycle is judged by the median of its readings: one slow one among seven is the reading's noise,
    # not a slow host phase (requiring all seven to pass left every cycle of quiet runs out)
    cells = [FakeCell(name, []) for name in "abcdefg"]
    outcomes = time_cells(cells, FakeKernel([QUIET_MS] * 3 + [SLOW_MS] + [QUIET_MS] * 10))  # type: ignore[arg-type]
    assert outcomes == [f"{name}: 3 rounds, counted [0, 1, 2]" for name in "abcdefg"]
    four_slow = FakeKernel([QUIET_MS] * 3 + [SLOW_MS] * 4)  # most of cycle 0 slow: left out
    outcomes = time_cells([FakeCell(name, []) for name in "abcdefg"], four_slow)  # type: ignore[arg-type]
    assert outcomes == [f"{name}: 4 rounds, counted [1, 2, 3]" for name in "abcdefg"]


def test_a_machine_slow_all_along_is_not_waited_for_and_every_round_counts():
    cells = [FakeCell("a", []), FakeCell("b", [])]
    outcomes = time_cells(cells, FakeKernel([SLOW_MS] * 100))  # type: ignore[arg-type]
    assert outcomes == ["a: 3 rounds, counted None (too few quiet)", "b: 3 rounds, counted None (too few quiet)"]


def test_quiet_cycles_that_come_late_are_waited_for_up_to_three_times_the_minimum():
    cells = [FakeCell("a", [])]
    outcomes = time_cells(cells, FakeKernel([QUIET_MS] + [SLOW_MS] * 100))  # type: ignore[arg-type]
    assert outcomes == ["a: 9 rounds, counted None (too few quiet)"]  # 3 cycles to the minimum, 9 at most


def test_a_cell_that_fails_leaves_the_group_and_the_others_go_on():
    log: list[str] = []
    cells = [FakeCell("a", log), FakeCell("b", log, fail_in_cycle=1)]
    outcomes = time_cells(cells, FakeKernel())  # type: ignore[arg-type]
    assert outcomes == ["a: 3 rounds, counted [0, 1, 2]", "b failed"]


def test_quiet_cycles_short_of_the_minimum_count_alone_when_they_hold_half_of_it():
    # 2 quiet cycles of the 3 the minimum takes (20 of 30 calls): they count, and the rows say noisy
    cells = [FakeCell("a", [])]
    outcomes = time_cells(cells, FakeKernel([QUIET_MS, QUIET_MS] + [SLOW_MS] * 100))  # type: ignore[arg-type]
    assert outcomes == ["a: 9 rounds, counted [0, 1] (too few quiet)"]  # timed on to 3x the minimum


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's wait measured on the fake kernel's clock: a second a reading."""
    FakeKernel.clock = 0.0
    monkeypatch.setattr(rounds.time, "monotonic", lambda: FakeKernel.clock)


@pytest.mark.usefixtures("fake_clock")
def test_a_slow_state_is_waited_out_before_a_cycle(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(FakeTiming, "quiet_wait_s", 5.0)
    said: list[str] = []
    cells = [FakeCell("a", []), FakeCell("b", [])]
    kernel = FakeKernel([SLOW_MS, SLOW_MS])
    outcomes = time_cells(cells, kernel, said.append)  # type: ignore[arg-type]
    # two slow readings, then a quiet one, before the first cycle; then every round quiet
    assert outcomes == ["a: 3 rounds, counted [0, 1, 2]", "b: 3 rounds, counted [0, 1, 2]"]
    assert said == [
        "the machine was in a slow phase (reference kernel up to x1.50 its fast level): waited 3.0 s for it to pass"
    ]


@pytest.mark.usefixtures("fake_clock")
def test_the_wait_stops_at_its_allowance_and_the_group_times_on(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(FakeTiming, "quiet_wait_s", 2.5)
    said: list[str] = []
    kernel = FakeKernel([SLOW_MS] * 100)
    outcomes = time_cells([FakeCell("a", [])], kernel, said.append)  # type: ignore[arg-type]
    # three readings spend the allowance before cycle 0; the group's later cycles do not wait again
    assert len(kernel.readings) == 100 - 3 - 3
    assert outcomes == ["a: 3 rounds, counted None (too few quiet)"]  # slow all along: as without waiting
    assert said == [
        "the machine was in a slow phase (reference kernel up to x1.50 its fast level): waited 3.0 s, "
        "the whole allowance, then timed on"
    ]


def test_no_allowance_never_reads_the_kernel_to_wait():
    kernel = FakeKernel([SLOW_MS] * 6)
    said: list[str] = []
    time_cells([FakeCell("a", []), FakeCell("b", [])], kernel, said.append)  # type: ignore[arg-type]
    assert said == [] and kernel.readings == []  # the 6 readings went to the 6 rounds


@pytest.mark.usefixtures("fake_clock")
def test_sequential_timing_never_waits(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(FakeTiming, "quiet_wait_s", 5.0)
    monkeypatch.setattr(FakeTiming, "mode", "sequential")
    kernel = FakeKernel([SLOW_MS] * 3)
    said: list[str] = []
    time_cells([FakeCell("a", [])], kernel, said.append)  # type: ignore[arg-type]
    assert said == [] and kernel.readings == []  # the 3 slow readings went to the rounds


class Int8Spec(FakeSpec):
    backend = "ort-qdq-int8"


def _precision_group(other_p50s: list[float]) -> list[FakeCell]:
    reference = FakeCell("eager", [], p50s=[4.0])
    reference.spec = ReferenceSpec()  # type: ignore[assignment]
    other = FakeCell("int8", [], p50s=other_p50s)
    other.spec = Int8Spec()  # type: ignore[assignment]
    return [reference, other]


def test_a_precision_target_times_on_until_every_speedup_interval_is_within_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(FakeTiming, "speedup_precision", 0.01)
    said: list[str] = []
    # two outlying rounds, then steady ones: the 95% interval of the median leaves both out at 9 cycles
    # (order statistics 2 and 8 of 9), not before (under 9, only the extremes reach 95%)
    group = _precision_group([1.0, 3.0, 2.0])
    outcomes = time_cells(group, FakeKernel(), said.append)  # type: ignore[arg-type]
    assert outcomes[1] == f"int8: 9 rounds, counted {list(range(9))}"
    assert said == ["every speedup's 95% interval within +-1% after 9 cycles (the minimum took 3)"]


def test_a_precision_target_out_of_reach_stops_at_ten_times_the_minimum_naming_the_rows(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(FakeTiming, "speedup_precision", 0.01)
    said: list[str] = []
    group = _precision_group([1.9, 2.1] * 50)  # ratios 2.105 and 1.905 for ever: the interval spans both
    outcomes = time_cells(group, FakeKernel(), said.append)  # type: ignore[arg-type]
    assert outcomes[1].startswith("int8: 30 rounds")  # 3 cycles to the minimum, 30 at most
    assert said == [
        "speedup intervals still wider than +-1% after 30 cycles (10x the 3 the minimum took, the most a group "
        "times): ort-qdq-int8 int8 +-5.0%"
    ]


def test_without_a_precision_target_or_a_reference_the_minimum_is_enough(monkeypatch: pytest.MonkeyPatch):
    said: list[str] = []
    outcomes = time_cells(_precision_group([1.9, 2.1] * 50), FakeKernel(), said.append)  # type: ignore[arg-type]
    assert outcomes[1].startswith("int8: 3 rounds") and said == []
    monkeypatch.setattr(FakeTiming, "speedup_precision", 0.01)
    alone = [FakeCell("int8", [], p50s=[1.9, 2.1] * 50)]  # no fp32 eager: no speedup to narrow
    assert time_cells(alone, FakeKernel(), said.append)[0].startswith("int8: 3 rounds")  # type: ignore[arg-type]
    assert said == ["every speedup's 95% interval within +-1% after 3 cycles (the minimum took 3)"]


@pytest.mark.parametrize(
    ("profile_calls", "slow_calls", "reference_p50", "round_p50s", "expected"),
    [
        (0, 20, 4.0, [5.0, 5.2, 4.9], 20),  # int8 slower than fp32 eager over the counted cycles: profiled
        (0, 20, 6.0, [5.0, 5.2, 4.9], 0),  # faster: not
        (0, 20, None, [5.0, 5.2, 4.9], 0),  # no fp32 eager in the group
        (0, 0, 4.0, [5.0, 5.2, 4.9], 0),  # not an int8 cell (the plan gives it no calls)
        (30, 20, 6.0, [5.0, 5.2, 4.9], 30),  # --profile: every cell, its own calls
    ],
)
def test_an_int8_cell_slower_than_fp32_is_profiled_without_profile(
    profile_calls, slow_calls, reference_p50, round_p50s, expected
):
    from types import SimpleNamespace

    from bench.run.cell import MeasuringCell

    spec = SimpleNamespace(profile_calls=profile_calls, slow_int8_profile_calls=slow_calls)
    cell = MeasuringCell(spec, None, None, None)  # type: ignore[arg-type]
    window = CpuWindows(total=100, other=1, process=95, wall_s=0.1, windows=1)
    cell.rounds = [TimedRound(10, 0.1, 1.0, window, None, p50) for p50 in round_p50s]
    timing = GroupTiming([0, 1, 2], False, (), 1.0, reference_p50)
    assert cell._profile_calls([0, 1, 2], timing) == expected
