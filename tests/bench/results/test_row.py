"""A row's stage statuses: which stages failed while the row's other numbers stand."""

from bench.results.row import Row, StageStatus, stage_failures


def test_a_stage_without_its_record_still_says_why_its_columns_are_empty():
    row = Row("s", "m", "ort", "fp32", "cpu", "ok", parts=(StageStatus("evaluation_status", "error: boom"),))
    assert row.record()["evaluation_status"] == "error: boom"


def test_failed_stages_are_the_status_columns_that_read_error():
    row = {
        "status": "ok",
        "evaluation_status": "ok",
        "gradcam_status": "ok",
        "gradcam_status@fakequant": "error: RuntimeError: diverged",
        "profile_status": "not available: ort has no profiler",
        "timing_quality": "error-free",
    }
    assert stage_failures(row) == [("gradcam@fakequant", "error: RuntimeError: diverged")]
    whole = {"gradcam_status": "error: timeout after 60 s", "gradcam_status@fakequant": "error: timeout after 60 s"}
    assert stage_failures(whole) == [("gradcam", "error: timeout after 60 s")]  # one failure, not two
    assert stage_failures({"status": "error: worker died", "profile_status": None}) == []
