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


def _row(backend: str, **columns: object) -> dict[str, object]:
    identity = {"suite": "camvid", "model": "enet", "precision": "fp32", "device": "cpu", "batch_size": 1}
    return {**identity, "backend": backend, "status": "ok", **columns}


def test_failed_stages_are_counted_and_named_at_the_end_of_the_run():
    from bench.run.runner import stage_summary

    rows = [
        _row(
            "torch-eager", evaluation_status="ok", gradcam_status="ok", **{"gradcam_status@fakequant": "not available"}
        ),
        _row("openvino", gradcam_status="error: RuntimeError: 'stop' input is not a scalar", profile_status="ok"),
        _row("ort", evaluation_status="error: timeout after 600 s", profile_status="error: RuntimeError: no counters"),
    ]
    line = stage_summary(rows)
    assert line.startswith("3 stage failure(s) in 2 of 3 rows (their other numbers stand; tracebacks in logs/): ")
    assert "camvid / enet / openvino fp32 gradcam: error: RuntimeError: 'stop' input is not a scalar" in line
    assert "ort fp32 evaluation: error: timeout after 600 s; camvid / enet / ort fp32 profile: error:" in line
    assert stage_summary(rows[:1]) == ""
