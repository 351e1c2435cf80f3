import numpy as np
import pytest

from bench.errors import UsageError
from bench.suite import SPLITS, get_suite, list_suites, split_indices


def test_default_suite_is_listed():
    assert "synthetic-nuclei" in list_suites()


def test_splits_are_disjoint_and_sized():
    sizes = {"train": 5, "calibration": 3, "evaluation": 4}
    parts = [set(split_indices(12, sizes, 1, s)) for s in SPLITS]
    assert [len(p) for p in parts] == [5, 3, 4]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_too_small_data_for_splits_is_a_usage_error():
    with pytest.raises(UsageError, match="splits need 12 items but the data has 10"):
        split_indices(10, {"train": 5, "calibration": 3, "evaluation": 4}, 1, "train")


def test_unknown_suite_lists_valid_names():
    with pytest.raises(UsageError, match="unknown suite 'nope'; valid suites: .*synthetic-nuclei"):
        get_suite("nope")


def test_invalid_suite_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n')
    with pytest.raises(UsageError, match=f"{bad}: invalid suite file"):
        get_suite(str(bad))


def test_normalize_uses_suite_mean_and_std():
    suite = get_suite("synthetic-nuclei")
    x = np.full((1, 1, 2, 2), suite.mean[0] + suite.std[0], np.float32)
    assert np.allclose(suite.normalize(x), 1.0)
