"""The lines at the end of a run: what a user must know about how its rows were timed."""

from bench.run.runner import priority_summary


def test_rounds_below_the_priority_asked_for_are_named_once_with_the_reason():
    refused = "normal (nice 0; realtime refused: Operation not permitted; high refused: Operation not permitted)"
    rows = [
        {"backend": "torch-eager", "timing_priority": refused},
        {"backend": "ort", "timing_priority": refused},
        {"backend": "tensorrt-int8", "timing_priority": None},  # unavailable: never timed
    ]
    line = priority_summary(rows, "realtime")
    assert line.startswith(f"timed rounds ran below --priority realtime: {refused};")
    assert line.count("refused: Operation not permitted; high") == 1 and "CAP_SYS_NICE" in line


def test_rounds_at_the_priority_asked_for_say_nothing():
    rows = [{"backend": "ort", "timing_priority": "realtime (SCHED_RR 1)"}, {"backend": "x"}]
    assert priority_summary(rows, "realtime") == ""
    assert priority_summary([{"timing_priority": "high (nice -10; realtime refused: ...)"}], "high") == ""
