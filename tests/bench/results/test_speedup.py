import pytest

from bench.results.speedup import (
    MIN_PAIRED_CYCLES,
    SameRunReference,
    Speedup,
    TimedRounds,
    paired_speedup,
    ratios_trusted,
)

GROUP = ("s", "m", "cpu", 1, "")


def _value(speedup: Speedup | None) -> float | None:
    return None if speedup is None else speedup.value


def test_speedup_is_a_ratio_to_fp32_eager_in_the_same_run():
    reference = SameRunReference()
    assert reference.speedup(GROUP, "ort-qdq-int8", "int8", 4.0) is None  # no reference measured yet
    assert _value(reference.speedup(GROUP, "torch-eager", "fp32", 10.0)) == pytest.approx(1.0)
    assert reference.speedup(GROUP, "ort-qdq-int8", "int8", 4.0) == Speedup(2.5, "p50 ratio")
    assert reference.speedup(("s", "other", "cpu", 1, ""), "ort-qdq-int8", "int8", 4.0) is None  # another model


def test_cycles_of_one_group_pair_and_a_drift_between_cycles_cancels():
    # the machine ran 40% slower in cycles 2 and 3, for both backends alike; the rows' p50s straddle it
    reference = TimedRounds(7, {0: 10.0, 1: 10.0, 2: 14.0, 3: 14.0, 4: 10.0})
    row = TimedRounds(7, {0: 4.0, 1: 4.0, 2: 5.6, 3: 5.6, 4: 4.0})
    same_run = SameRunReference()
    same_run.speedup(GROUP, "torch-eager", "fp32", 10.0, reference)
    speedup = same_run.speedup(GROUP, "ort-qdq-int8", "int8", 5.6, row)
    assert speedup is not None and speedup.value == 2.5  # the p50 ratio would say 1.79
    assert speedup.method == "paired: median of 5 per-cycle p50 ratios"
    # every cycle's ratio is 2.5: its interval is that point, at the coverage 5 cycles allow
    assert speedup.interval is not None and (speedup.interval.low, speedup.interval.high) == (2.5, 2.5)
    assert "of 5 per-cycle ratios (93.8% coverage)" in speedup.interval.method
    columns = speedup.columns()
    assert columns["speedup_vs_fp32_ci_low"] == 2.5 and columns["speedup_ci_method"] == speedup.interval.method


def test_cycles_of_different_groups_or_too_few_never_pair():
    reference = TimedRounds(0, {0: 10.0, 1: 10.0, 2: 10.0})
    assert paired_speedup(reference, TimedRounds(1, {0: 5.0, 1: 5.0, 2: 5.0})) is None  # sequential: timed apart
    few = {i: 5.0 for i in range(MIN_PAIRED_CYCLES - 1)}
    assert paired_speedup(reference, TimedRounds(0, few)) is None
    same_run = SameRunReference()
    same_run.speedup(GROUP, "torch-eager", "fp32", 10.0, reference)
    assert same_run.speedup(GROUP, "ort", "fp32", 4.0, TimedRounds(1, {0: 5.0, 1: 5.0, 2: 5.0})) == Speedup(
        2.5, "p50 ratio"
    )


def test_a_resumed_run_finds_its_reference_among_the_finished_rows():
    rows = [
        {
            "suite": "s",
            "model": "m",
            "device": "cpu",
            "batch_size": 1,
            "backend": "torch-eager",
            "precision": "fp32",
            "status": "ok",
            "latency_p50_ms": 10.0,
        }
    ]
    resumed = SameRunReference(rows).speedup(GROUP, "ort", "fp32", 5.0, TimedRounds(3, {0: 5.0, 1: 5.0, 2: 5.0}))
    assert resumed == Speedup(2.0, "p50 ratio")  # its cycles went with the earlier session
    failed = [{**rows[0], "status": "error: boom"}]
    assert SameRunReference(failed).speedup(GROUP, "ort", "fp32", 5.0) is None


@pytest.mark.parametrize(
    ("quality", "trusted"),
    [
        ("ok", True),
        ("unmeasured: no /proc accounting and no reference kernel", True),
        ("noisy: rounds disagreed (their medians spread 12%)", True),  # the level moved: pairing cancels it
        ("noisy: other processes used 40% of the CPU", False),
        ("noisy: 9% CPU steal", False),
        (
            "noisy: slow host phase (reference kernel x1.30 its fast level), rounds disagreed (their medians "
            "spread 12%)",
            False,
        ),
        ("noisy: too few quiet rounds", False),
        (None, True),  # a row without timing (an error row) has no ratio to distrust
    ],
)
def test_paired_ratios_survive_rounds_that_only_disagreed(quality, trusted):
    assert ratios_trusted(quality) is trusted
