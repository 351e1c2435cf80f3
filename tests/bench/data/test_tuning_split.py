"""The tuning split: disjoint from calibration and evaluation, never moving the other splits."""

from pathlib import Path

import numpy as np
import pytest

from bench.data.sources import calibration_pool, draw_calibration, tuning_positions
from bench.data.suite import get_suite
from bench.errors import UsageError
from tests.bench.data.files_fixture import needs_shared_data

SCENES = (Path(__file__).resolve().parents[3] / "suites" / "synthetic-scenes.toml").read_text()


def _suite(tmp_path: Path, splits: str, name: str = "tiny.toml"):
    text = SCENES.replace("input_size = [128, 128]", "input_size = [32, 32]")
    start, end = text.index("[splits]"), text.index("[gradcam]")
    path = tmp_path / name
    path.write_text(
        text[:start] + "[splits]\nseed = 3\n" + splits + "\n" + text[end:].replace("images = 4", "images = 2")
    )
    return get_suite(str(path))


def _rows(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def test_a_held_out_tuning_split_is_new_images_and_moves_no_other_split(tmp_path: Path) -> None:
    before = _suite(tmp_path, "train = 12\ncalibration = 4\nevaluation = 6", "before.toml")
    after = _suite(tmp_path, "train = 12\ncalibration = 4\nevaluation = 6\ntuning = 5", "after.toml")
    for split in ("train", "calibration", "evaluation"):
        assert np.array_equal(before.load(split).images, after.load(split).images)
    tuning = after.load("tuning")
    assert len(tuning) == 5
    others = set().union(*(_rows(after.load(s).images) for s in ("train", "calibration", "evaluation")))
    assert not _rows(tuning.images) & others
    assert before.config() == after.config(include_tuning=False)  # the checkpoint key stays


def test_a_tuning_split_from_train_is_a_seeded_subset_of_the_training_images(tmp_path: Path) -> None:
    suite = _suite(tmp_path, 'train = 12\ncalibration = 4\nevaluation = 6\ntuning = 5\ntuning_from = "train"')
    train, tuning = suite.load("train"), suite.load("tuning")
    assert _rows(tuning.images) <= _rows(train.images)
    assert not _rows(tuning.images) & (_rows(suite.load("calibration").images) | _rows(suite.load("evaluation").images))
    assert np.array_equal(tuning_positions(suite.request), tuning_positions(suite.request))
    # calibration draws of other sizes come from calibration + training, never the tuning images
    pool = calibration_pool(suite.request)
    assert len(pool) == 4 + 12 - 5 and not _rows(pool.images) & _rows(tuning.images)
    assert np.array_equal(draw_calibration(suite.request, 4, 0), suite.load("calibration").images)
    assert not np.array_equal(draw_calibration(suite.request, 4, 1), draw_calibration(suite.request, 4, 2))
    with pytest.raises(UsageError, match="calibration size 12 is not valid .* expected 1..11"):
        draw_calibration(suite.request, 12, 0)


def test_a_suite_without_a_tuning_split_says_how_to_add_one(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "train = 12\ncalibration = 4\nevaluation = 6")
    with pytest.raises(UsageError, match=r"has no tuning split; add tuning = N under \[splits\]"):
        suite.load("tuning")


@pytest.mark.parametrize(
    "splits, message",
    [
        (
            'train = 4\ncalibration = 1\nevaluation = 2\ntuning = 5\ntuning_from = "train"',
            "drawn from the training split",
        ),
        (
            'train = 4\ncalibration = 1\nevaluation = 2\ntuning = 1\ntuning_from = "val"',
            "tuning_from = 'val' is not valid",
        ),
        ("train = 4\ncalibration = 1\nevaluation = 2\ntunning = 1", "has no key 'tunning'"),
    ],
)
def test_tuning_split_mistakes_name_the_suite_file(tmp_path: Path, splits: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _suite(tmp_path, splits)


@needs_shared_data
def test_camvid_mini_tunes_on_training_images_never_on_calibration_or_evaluation() -> None:
    suite = get_suite("camvid")
    tuning = suite.load("tuning")
    assert len(tuning) == 20 and suite.tuning_from == "train"
    assert _rows(tuning.images) <= _rows(suite.load("train").images)
    assert not _rows(tuning.images) & (_rows(suite.load("calibration").images) | _rows(suite.load("evaluation").images))
