import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.data import camvid
from bench.data.request import SPLITS as ALL_SPLITS
from bench.data.suite import get_suite
from bench.errors import UsageError
from tests.bench.data.files_fixture import needs_shared_data, save, suite_text
from tests.helpers import SHARED_DATA

SPLITS = ALL_SPLITS[:3]  # train, calibration, evaluation (the tuning split: test_tuning_split.py)

CLASSES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]


@pytest.fixture(scope="module")
def shared_splits(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        suite = get_suite("camvid", data_dir=SHARED_DATA / "camvid-mini")
        return suite, {split: suite.load(split) for split in SPLITS}


@needs_shared_data
def test_shared_subset_counts_shapes_and_void(shared_splits):
    suite, data = shared_splits
    assert suite.ignore_label == 11 and suite.num_classes == 11 and suite.input_size == (192, 256)
    assert len(data["train"]) + len(data["calibration"]) == 100 and len(data["evaluation"]) == 25
    for d in data.values():
        assert d.images.shape[1:] == (3, 192, 256) and d.images.dtype == np.float32
        assert 0.0 <= d.images.min() and d.images.max() <= 1.0
        assert d.masks.dtype == np.int64 and set(np.unique(d.masks)) <= set(range(12))
        assert (d.masks == 11).any()  # void is kept as 11, not mapped to 255 or a class
    assert len(set(np.unique(data["train"].masks))) >= 10


@needs_shared_data
def test_calibration_is_disjoint_from_training_and_evaluation_comes_from_val(shared_splits):
    suite, _ = shared_splits
    items = {s: camvid.list_items(suite.request, s) for s in SPLITS}
    train, calibration = {i.name for i in items["train"]}, {i.name for i in items["calibration"]}
    assert not train & calibration
    assert all(i.image.parent.name == "train" for i in items["train"] + items["calibration"])
    assert {i.image.parent.name for i in items["evaluation"]} == {"val"}
    assert [i.name for i in camvid.list_items(suite.request, "calibration")] == sorted(calibration)


def _tiny(root: Path, names: list[str], folder: str = "train", labels: int = 12) -> None:
    rng = np.random.default_rng(1)
    for name in names:
        save(root / folder / name, rng.integers(0, 255, (9, 12, 3), dtype=np.uint8))
        save(root / f"{folder}annot" / name, rng.integers(0, labels, (9, 12), dtype=np.uint8))


def _suite(write_suite, root: Path, **kw):
    return get_suite(
        str(write_suite(suite_text("camvid", classes=CLASSES, size=(9, 12), extra="ignore_label = 11", **kw))),
        data_dir=root,
    )


def test_labels_outside_the_class_table_name_the_mask(tmp_path, write_suite):
    _tiny(tmp_path, ["a.png", "b.png", "c.png"], labels=14)
    _tiny(tmp_path, ["v.png"], folder="val")
    suite = _suite(write_suite, tmp_path, splits=(2, 1, 1))
    with pytest.raises(
        UsageError, match=r"trainannot/\w\.png: mask labels 12.* outside the class table \(0\.\.10, void 11\)"
    ):
        suite.load("train")


def test_image_without_mask_and_missing_folder(tmp_path, write_suite):
    _tiny(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "trainannot" / "b.png").unlink()
    suite = _suite(write_suite, tmp_path, splits=(3, 0, 1))
    with pytest.raises(UsageError, match=r"train/b\.png: image has no mask .*trainannot/b\.png"):
        suite.load("train")
    with pytest.raises(UsageError, match=f"{tmp_path / 'val'}: image folder of suite 'tiny-camvid' does not exist"):
        suite.load("evaluation")


def test_evaluation_folder_option(tmp_path, write_suite):
    _tiny(tmp_path, ["a.png", "b.png"])
    _tiny(tmp_path, ["t1.png", "t2.png"], folder="test")
    suite = _suite(write_suite, tmp_path, splits=(1, 1, 2), options='evaluation_folder = "test"')
    assert [i.name for i in camvid.list_items(suite.request, "evaluation")] == ["t1.png", "t2.png"]
    assert len(suite.load("evaluation")) == 2


def test_tuning_split_from_its_own_folder_or_held_out_of_train(tmp_path, write_suite):
    """With the full SegNet layout: train on train/, tune on val/, evaluate on test/ (other video sequences)."""
    _tiny(tmp_path, ["a.png", "b.png", "c.png", "d.png"])
    _tiny(tmp_path, ["v1.png", "v2.png"], folder="val")
    _tiny(tmp_path, ["t1.png"], folder="test")
    text = suite_text("camvid", classes=CLASSES, size=(9, 12), extra="ignore_label = 11", splits=(2, 1, 1))
    text = text.replace("evaluation = 1\n", "evaluation = 1\ntuning = 2\n")
    own = get_suite(str(write_suite(text + '[options]\nevaluation_folder = "test"\ntuning_folder = "val"\n')), tmp_path)
    assert [i.name for i in camvid.list_items(own.request, "tuning")] == ["v1.png", "v2.png"]
    assert len(own.load("train")) == 2 and len(own.load("evaluation")) == 1
    held = get_suite(str(write_suite(text.replace("tuning = 2", "tuning = 1"))), tmp_path)
    names = {s: {i.name for i in camvid.list_items(held.request, s)} for s in ("train", "calibration", "tuning")}
    assert sum(map(len, names.values())) == 4 and len(set().union(*names.values())) == 4
    with pytest.raises(UsageError, match="tuning_folder = 'val' must differ from evaluation_folder"):
        get_suite(str(write_suite(text + '[options]\ntuning_folder = "val"\n')), tmp_path)


def test_unknown_option_names_the_suite_file(tmp_path, write_suite):
    with pytest.raises(UsageError, match=r"suite\.toml: unknown camvid option 'eval'"):
        _suite(write_suite, tmp_path, options='eval = "test"')


# --- a data folder laid out like the full SegNet CamVid: train/, val/ and test/ -------------------------------


def _full(root: Path, test: bool = True) -> None:
    _tiny(root, [f"0001TP_{k:06d}.png" for k in range(12)])
    _tiny(root, [f"0016E5_{k:05d}.png" for k in range(5)], folder="val")
    if test:
        _tiny(root, [f"Seq05VD_f{k:05d}.png" for k in range(7)], folder="test")


def _parents(suite, splits=ALL_SPLITS) -> dict[str, set[str]]:
    """The folders each split's images come from (a tuning split drawn from train is not the layout's)."""
    return {s: {i.image.parent.name for i in camvid.list_items(suite.request, s)} for s in splits}


FULL = {"train": 0.75, "calibration": "all", "evaluation": "all", "tuning": "all"}


def test_the_full_layout_evaluates_on_test_and_tunes_on_val(tmp_path):
    _full(tmp_path)
    suite = get_suite("camvid", data_dir=tmp_path, splits=FULL)  # the built-in file, nothing edited
    assert suite.options == {"evaluation_folder": "test", "tuning_folder": "val"} and suite.tuning_from == "held-out"
    assert suite.split_sizes == {"train": 9, "calibration": 3, "evaluation": 7, "tuning": 5}  # each of its folder
    assert _parents(suite) == {"train": {"train"}, "calibration": {"train"}, "evaluation": {"test"}, "tuning": {"val"}}
    train, calibration = ({i.name for i in camvid.list_items(suite.request, s)} for s in ("train", "calibration"))
    assert not train & calibration and len(train | calibration) == 12
    assert len(suite.load("evaluation")) == 7 and suite.recipe == "camvid"
    # the folders are part of the data's identity: the same counts on the subset's layout are other data
    shutil.rmtree(tmp_path / "test")
    without = get_suite("camvid", data_dir=tmp_path, splits={**FULL, "evaluation": 5})
    assert without.config(include_tuning=False)["options"] != suite.config(include_tuning=False)["options"]


def test_without_test_the_layout_evaluates_on_val_and_tunes_on_training_images(tmp_path):
    """The shared camvid-mini has no test/: its splits and keys stay what they were."""
    _full(tmp_path, test=False)
    suite = get_suite("camvid", data_dir=tmp_path, splits=FULL)
    assert suite.options == {"evaluation_folder": "val"} and suite.tuning_from == "train"
    assert suite.split_sizes == {"train": 9, "calibration": 3, "evaluation": 5, "tuning": 9}  # all of train
    assert _parents(suite, SPLITS) == {"train": {"train"}, "calibration": {"train"}, "evaluation": {"val"}}
    assert len(suite.load("tuning")) == 9  # a subset of the training split, as on the shared subset


def test_folders_the_suite_file_names_win_over_what_the_data_has(tmp_path, write_suite):
    _full(tmp_path)
    text = suite_text("camvid", classes=CLASSES, size=(9, 12), extra="ignore_label = 11", splits=(6, 2, 2))
    named = get_suite(str(write_suite(text + '[options]\nevaluation_folder = "val"\n')), tmp_path)
    assert named.options == {"evaluation_folder": "val"} and _parents(named, SPLITS)["evaluation"] == {"val"}
    found = get_suite(str(write_suite(text)), tmp_path)
    assert found.options == {"evaluation_folder": "test", "tuning_folder": "val"}
    assert found.config() != named.config()
