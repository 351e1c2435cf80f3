"""A decision entry's numbers in words: the name a winner is shipped under, and its speedup and drift with
their 95% intervals in brackets (none where the number has no interval)."""

from __future__ import annotations

from bench.decide.entry import Entry, bracket, drift_text, speed_text, winner_name


def _entry(**values: object) -> Entry:
    return Entry(
        cell="camvid/unet/ort-qdq-int8/int8/cpu/b1",
        backend="ort-qdq-int8",
        precision="int8",
        options="calibration=minmax",
        verdict="recommended",
        reason="fastest within every budget",
        **values,  # type: ignore[arg-type]
    )


def test_the_winner_is_named_by_backend_and_precision_not_options():
    assert winner_name(_entry()) == "ort-qdq-int8 int8"


def test_a_bracket_needs_both_ends():
    assert bracket(0.5, 1.25) == " [0.50, 1.25]"
    assert bracket(0.5, 1.25, "{:.1f}".format) == " [0.5, 1.2]"
    assert bracket(None, 1.25) == "" and bracket(0.5, None) == ""


def test_speed_in_words_with_and_without_its_interval():
    assert speed_text(_entry()) == "no speedup (no fp32 eager row)"
    assert speed_text(_entry(speedup=2.5)) == "2.50x fp32 eager"
    assert speed_text(_entry(speedup=2.5, speedup_low=2.404, speedup_high=2.61)) == "2.50x fp32 eager [2.40, 2.61]"


def test_drift_in_words_names_the_quality_metric():
    assert drift_text(_entry()) == ""
    assert drift_text(_entry(quality_drift=-0.00421)) == "miou_drift -0.0042"
    drift = _entry(quality_metric="dice", quality_drift=-0.00421, quality_drift_low=-0.006, quality_drift_high=0.0)
    assert drift_text(drift) == "dice_drift -0.0042 [-0.0060, 0.0000]"
