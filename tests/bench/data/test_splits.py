"""Split counts: integers, fractions of the items a split draws from, or "all" of what the others leave."""

from pathlib import Path

import pytest

from bench.data.splits import is_count, parse_count, resolve_counts, share, shared_all
from bench.data.suite import split_overrides
from bench.errors import UsageError


@pytest.mark.parametrize("value, ok", [(0, True), (40, True), (-1, False), (True, False), (0.5, True), (1.0, True)])
def test_counts_are_integers_fractions_or_all(value, ok):
    assert is_count(value) is ok


@pytest.mark.parametrize("value", [0.0, 1.5, "ALL", "half", None])
def test_anything_else_is_not_a_count(value):
    assert not is_count(value)


def test_the_command_line_gives_counts_as_a_suite_file_would():
    assert parse_count("40") == 40 and isinstance(parse_count("40"), int)
    assert parse_count("0.8") == 0.8 and parse_count("1.0") == 1.0 and isinstance(parse_count("1.0"), float)
    assert parse_count(" all ") == "all"
    for bad in ("1.5", "-3", "nan", "x", ""):
        with pytest.raises(ValueError):
            parse_count(bad)


def test_a_fraction_is_rounded_down_but_never_to_nothing():
    assert share(0.8, 670) == 536 and share(0.29, 100) == 29 and share(0.01, 40) == 1
    assert share("all", 40) == 40 and share(7, 40) == 7


def test_all_takes_what_the_other_splits_of_its_pool_leave():
    pool, other = (Path("train"), 367), (Path("test"), 233)
    counts = {"train": 0.9, "calibration": "all", "evaluation": "all"}
    sizes = resolve_counts(counts, {"train": pool, "calibration": pool, "evaluation": other})
    assert sizes == {"train": 330, "calibration": 37, "evaluation": 233}
    assert list(sizes) == ["train", "calibration", "evaluation"]  # the fixed split order
    with pytest.raises(UsageError, match="train: splits need 400 items but the data has 367"):
        resolve_counts({"train": 400, "calibration": "all"}, {"train": pool, "calibration": pool})


def test_two_splits_cannot_both_take_all_of_one_pool():
    folders = {"train": Path("a"), "calibration": Path("a"), "evaluation": Path("b")}
    assert shared_all({"train": "all", "calibration": 3, "evaluation": "all"}, folders) is None
    assert shared_all({"train": "all", "calibration": "all", "evaluation": 3}, folders) == ("train", "calibration")


def test_split_options_parse_and_bad_ones_say_what_was_expected():
    assert split_overrides(["train=0.8", "evaluation=all", "tuning=16", "train=0.7"]) == {
        "train": 0.7,  # the last of a name wins
        "evaluation": "all",
        "tuning": 16,
    }
    for bad in ("train", "training=3", "train=1.5", "train=-1", "evaluation=everything"):
        with pytest.raises(UsageError, match=rf"^--split '{bad}' is not valid; expected NAME=COUNT with NAME one of "):
            split_overrides([bad])
