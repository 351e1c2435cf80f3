from pathlib import Path

import numpy as np
import pytest

from bench.data import dsb2018
from bench.data.request import SPLITS as ALL_SPLITS
from bench.data.suite import get_suite
from bench.errors import UsageError
from tests.bench.data.files_fixture import needs_shared_data, save, suite_text
from tests.helpers import SHARED_DATA

SPLITS = ALL_SPLITS[:3]  # train, calibration, evaluation (the tuning split: test_tuning_split.py)


@pytest.fixture(scope="module")
def shared_splits(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        suite = get_suite("dsb2018", data_dir=SHARED_DATA / "dsb2018-mini")
        return suite, {split: suite.load(split) for split in SPLITS}


@needs_shared_data
def test_shared_subset_splits_have_the_toml_counts_and_shapes(shared_splits):
    suite, data = shared_splits
    assert {s: len(d) for s, d in data.items()} == {"train": 56, "calibration": 8, "evaluation": 16}
    for d in data.values():
        assert d.images.shape[1:] == (3, 256, 256) and d.images.dtype == np.float32
        assert d.masks.shape[1:] == (256, 256) and d.masks.dtype == np.int64
        assert 0.0 <= d.images.min() and d.images.max() <= 1.0
        assert set(np.unique(d.masks)) == {0, 1}
    # nuclei cover a plausible fraction of the pixels (a union of masks, not a single nucleus or everything)
    assert 0.03 < data["train"].masks.mean() < 0.5


@needs_shared_data
def test_splits_are_disjoint_deterministic_and_cover_sorted_ids(shared_splits):
    suite, _ = shared_splits
    names = {s: [item.name for item in dsb2018.list_items(suite.request, s)] for s in SPLITS}
    assert names == {s: [item.name for item in dsb2018.list_items(suite.request, s)] for s in SPLITS}
    sets = [set(v) for v in names.values()]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == 80


@needs_shared_data
def test_second_load_comes_from_the_disk_cache_and_is_identical(shared_splits, isolated_cache):
    suite, data = shared_splits
    first = dsb2018.SOURCE.load(suite.request, "evaluation")  # decodes, writes the npz
    assert list((isolated_cache / "datasets").glob("dsb2018--evaluation--*.npz"))
    again = dsb2018.SOURCE.load(suite.request, "evaluation")
    assert np.array_equal(first.images, again.images) and np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.images, data["evaluation"].images)


def _tiny(root: Path, ids: list[str], with_masks: bool = True) -> None:
    rng = np.random.default_rng(0)
    for i in ids:
        save(root / "stage1_train" / i / "images" / f"{i}.png", rng.integers(0, 255, (20, 24, 4), dtype=np.uint8))
        if with_masks:
            a, b = np.zeros((20, 24), np.uint8), np.zeros((20, 24), np.uint8)
            a[2:8, 2:8], b[10:16, 12:20] = 255, 255
            save(root / "stage1_train" / i / "masks" / "a.png", a)
            save(root / "stage1_train" / i / "masks" / "b.png", b)


def test_mask_is_the_union_of_nucleus_masks_resized_nearest(tmp_path, write_suite):
    _tiny(tmp_path / "d", ["x1", "x2", "x3", "x4"])
    suite = get_suite(
        str(write_suite(suite_text("dsb2018", classes=["background", "nucleus"], size=(20, 24), splits=(2, 1, 1)))),
        data_dir=tmp_path / "d",
    )
    mask = suite.load("evaluation").masks[0]
    expected = np.zeros((20, 24), np.int64)
    expected[2:8, 2:8] = expected[10:16, 12:20] = 1
    assert np.array_equal(mask, expected)


def test_image_without_mask_names_the_image(tmp_path, write_suite):
    _tiny(tmp_path / "d", ["x1", "x2"], with_masks=False)
    suite = get_suite(
        str(write_suite(suite_text("dsb2018", classes=["background", "nucleus"], splits=(1, 0, 1)))),
        data_dir=tmp_path / "d",
    )
    with pytest.raises(UsageError, match=r"x\d\.png: image has no mask"):
        suite.load("train")


def test_corrupt_image_names_the_file(tmp_path, write_suite):
    _tiny(tmp_path / "d", ["x1", "x2"])
    for i in ("x1", "x2"):
        (tmp_path / "d" / "stage1_train" / i / "images" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    suite = get_suite(
        str(write_suite(suite_text("dsb2018", classes=["background", "nucleus"], splits=(1, 0, 1)))),
        data_dir=tmp_path / "d",
    )
    with pytest.raises(UsageError, match=r"x\d\.png: cannot read image"):
        suite.load("train")


def test_missing_data_folder_and_too_few_items_name_the_path(tmp_path, write_suite):
    toml = write_suite(suite_text("dsb2018", classes=["background", "nucleus"], splits=(3, 1, 2)))
    missing = get_suite(str(toml), data_dir=tmp_path / "nowhere")
    assert missing.data_status() == f"missing: {tmp_path / 'nowhere'}"
    with pytest.raises(UsageError, match=f"{tmp_path / 'nowhere'}: data folder of suite 'tiny-dsb2018' does not exist"):
        missing.load("train")
    _tiny(tmp_path / "d", ["x1", "x2"])
    with pytest.raises(UsageError, match=f"{tmp_path / 'd' / 'stage1_train'}: splits need 6 items but the data has 2"):
        get_suite(str(toml), data_dir=tmp_path / "d").load("train")


# --- a data folder laid out like the full stage1_train: counts that fit it --------------------------------

BUILT_IN = Path(__file__).resolve().parents[3] / "suites" / "dsb2018.toml"


def _full(root: Path, n: int, start: int = 0) -> list[str]:
    ids = [f"{k:04x}e3f1" for k in range(start, start + n)]  # hex ids like the real ones
    for i in ids:
        save(root / "stage1_train" / i / "images" / f"{i}.png", np.full((6, 6, 4), 9, np.uint8))
        save(root / "stage1_train" / i / "masks" / "m.png", np.eye(6, dtype=np.uint8) * 255)
    return ids


def _names(suite) -> dict[str, list[str]]:
    return {s: [item.name for item in dsb2018.list_items(suite.request, s)] for s in SPLITS}


def test_fractions_and_all_resolve_against_the_full_data_set(tmp_path, write_suite):
    ids = _full(tmp_path / "full", 40)
    text = suite_text("dsb2018", classes=["background", "nucleus"], size=(6, 6), splits=(0.8, 0.1, '"all"'))
    path = write_suite(text.replace("evaluation", 'tuning = 0.25\ntuning_from = "train"\nevaluation', 1))
    suite = get_suite(str(path), data_dir=tmp_path / "full")
    assert suite.split_sizes == {"train": 32, "calibration": 4, "evaluation": 4, "tuning": 8}
    assert suite.split_counts["evaluation"] == "all" and suite.unresolved is None
    names = _names(suite)
    assert sorted(sum(names.values(), [])) == sorted(ids)  # disjoint, and together every sample
    assert names == _names(get_suite(str(path), data_dir=tmp_path / "full"))  # seeded: the same on every call
    assert len(suite.load("tuning")) == 8 and len(suite.load("evaluation")) == 4
    # a grown data folder is other data: other counts, other cache keys
    _full(tmp_path / "full", 10, start=40)
    grown = get_suite(str(path), data_dir=tmp_path / "full")
    assert grown.split_sizes == {"train": 40, "calibration": 5, "evaluation": 5, "tuning": 10}
    assert grown.config() != suite.config()


def test_the_command_line_fits_the_built_in_suite_to_the_full_data_set(tmp_path):
    _full(tmp_path, 60)
    suite = get_suite("dsb2018", data_dir=tmp_path, splits={"train": 0.8, "evaluation": "all"})
    assert suite.split_sizes == {"train": 48, "calibration": 8, "evaluation": 4, "tuning": 16}
    assert suite.recipe == "dsb2018"
    with pytest.raises(UsageError, match=r"splits need 80 items but the data has 60"):
        get_suite("dsb2018", data_dir=tmp_path).load("train")  # the counts of the shared subset do not fit
    # integer counts keep the keys they had: the counts resolved are the counts written
    plain = get_suite("dsb2018", data_dir=tmp_path)
    same = get_suite("dsb2018", data_dir=tmp_path, splits={"train": 56, "evaluation": 16})
    assert same.config() == plain.config()


def test_two_splits_cannot_both_take_all_of_the_samples(tmp_path, write_suite):
    _full(tmp_path, 10)
    path = write_suite(suite_text("dsb2018", classes=["background", "nucleus"], splits=('"all"', 1, '"all"')))
    with pytest.raises(UsageError, match=r"suite\.toml: \[splits\] train = 'all' and \[splits\] evaluation = 'all'"):
        get_suite(str(path), data_dir=tmp_path)
    with pytest.raises(UsageError, match=r"--split train=all and --split evaluation=all both take all of"):
        get_suite("dsb2018", data_dir=tmp_path, splits={"train": "all", "evaluation": "all"})


def test_fractions_on_a_missing_data_folder_wait_for_the_data(tmp_path):
    """`segbench list suites` must not fail on them; loading reports the folder as it always did."""
    suite = get_suite("dsb2018", data_dir=tmp_path / "nowhere", splits={"train": 0.8, "evaluation": "all"})
    assert suite.unresolved is not None and suite.data_status() == f"missing: {tmp_path / 'nowhere'}"
    assert suite.split_sizes == {"calibration": 8, "tuning": 16}  # what is known without the data
    with pytest.raises(UsageError, match=f"{tmp_path / 'nowhere'}: data folder of suite 'dsb2018' does not exist"):
        suite.load("train")
    with pytest.raises(UsageError, match="does not exist"):
        suite.config()
