from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.request import SPLITS
from bench.data.splits import split_indices
from bench.data.suite import get_suite, list_suites, resolve_data_dir
from bench.errors import UsageError
from tests.helpers import SHARED_DATA


def test_default_suite_is_listed():
    assert "synthetic-nuclei" in list_suites()


def test_splits_are_disjoint_and_sized():
    sizes = {"train": 5, "calibration": 3, "evaluation": 4}
    parts = [set(split_indices(12, sizes, 1, s)) for s in SPLITS if s in sizes]
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


# --- data folders, Grad-CAM settings, validation ---------------------------------------------------

REAL = """name = "r"
source = "folders"
data = "my-data"
classes = ["background", "nucleus", "cell"]
background_class = 0
in_channels = 1
input_size = [8, 8]
mean = [0.5]
std = [0.25]
[splits]
seed = 1
train = 2
calibration = 1
evaluation = 2
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


def test_gradcam_defaults_to_four_images_and_every_foreground_class(tmp_path):
    suite = get_suite(_write(tmp_path, REAL.replace("evaluation = 2", "evaluation = 9")))
    assert suite.gradcam_images == 4 and suite.gradcam_classes == (1, 2)
    assert get_suite(_write(tmp_path, REAL)).gradcam_images == 2  # never more than the evaluation split has


def test_gradcam_table_gives_class_indices(tmp_path):
    suite = get_suite(_write(tmp_path, REAL + '[gradcam]\nimages = 2\nclasses = ["cell"]\n'))
    assert suite.gradcam_images == 2 and suite.gradcam_classes == (2,)
    nuclei = get_suite("synthetic-nuclei")
    assert nuclei.gradcam_images == 4 and nuclei.gradcam_classes == (1,)


@pytest.mark.parametrize(
    "table, message",
    [
        (
            'classes = ["cytoplasm"]',
            r"\[gradcam\] class 'cytoplasm' is not one of the classes \(background, nucleus, cell\)",
        ),
        ("images = 0", r"\[gradcam\] images = 0 is not valid; expected 1\.\.2"),
        ("images = 3", r"\[gradcam\] images = 3 is not valid"),
        ("layers = 1", r"\[gradcam\] takes images and classes only"),
    ],
)
def test_bad_gradcam_table_names_the_suite_file(tmp_path, table, message):
    path = _write(tmp_path, REAL + f"[gradcam]\n{table}\n")
    with pytest.raises(UsageError, match=f"^{path}: {message}"):
        get_suite(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (('source = "folders"', 'source = "nope"'), "unknown suite source 'nope'; valid suite sources: .*camvid"),
        (('data = "my-data"\n', ""), "source 'folders' reads files: add data"),
        (("std = [0.25]", "std = [0.25, 0.25]"), "in_channels = 1 with mean"),
        (("background_class = 0", "ignore_label = 2"), "ignore_label = 2 is not valid"),
        (('name = "r"', 'name = "r"\nmean_value = 1'), "unknown key 'mean_value'"),
    ],
)
def test_suite_file_mistakes_name_the_file(tmp_path, edit, message):
    path = _write(tmp_path, REAL.replace(*edit))
    with pytest.raises(UsageError, match=f"^{path}: {message}"):
        get_suite(path)


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    work = tmp_path / "project"
    (work / "data").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("SEGBENCH_DATA", raising=False)
    shared = tmp_path / "shared" / "data" / "set"
    assert resolve_data_dir("set") == (work / "data" / "set").resolve()  # nothing exists: the first candidate
    shared.mkdir(parents=True)
    assert resolve_data_dir("set") == shared.resolve()
    (work / "data" / "set").mkdir()
    assert resolve_data_dir("set") == (work / "data" / "set").resolve()
    env = tmp_path / "env"
    monkeypatch.setenv("SEGBENCH_DATA", str(env))
    assert resolve_data_dir("set") == (work / "data" / "set").resolve()  # $SEGBENCH_DATA/set does not exist
    (env / "set").mkdir(parents=True)
    assert resolve_data_dir("set") == (env / "set").resolve()
    assert resolve_data_dir("set", Path("explicit")) == (work / "explicit").resolve()
    assert resolve_data_dir("set", env) == (env / "set").resolve()  # a folder of data sets


def test_data_status_and_config_carry_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEGBENCH_DATA", raising=False)
    path = _write(tmp_path, REAL)
    suite = get_suite(path)
    assert suite.data_dir == tmp_path / "data" / "my-data"
    assert suite.data_status() == f"missing: {tmp_path / 'data' / 'my-data'}"
    (tmp_path / "elsewhere").mkdir()
    found = get_suite(path, data_dir=tmp_path / "elsewhere")
    assert found.data_status() == f"missing: {tmp_path / 'elsewhere'}"  # exists, but holds no images/ and masks/
    for k in range(5):
        for folder in ("images", "masks"):
            (tmp_path / "elsewhere" / folder).mkdir(exist_ok=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "elsewhere" / folder / f"{k}.png")
    assert found.data_status() == "present" and found.config()["data_dir"] == str(tmp_path / "elsewhere")
    assert found.config() != suite.config()


def test_procedural_suites_ignore_the_data_folder(tmp_path):
    for name in ("synthetic-nuclei", "synthetic-scenes"):
        suite = get_suite(name, data_dir=tmp_path)
        assert suite.data_dir is None and suite.data_status() == "procedural"
        assert "data_dir" not in suite.config()


def test_shipped_suites_parse_and_real_ones_find_the_shared_data(monkeypatch):
    assert {"synthetic-nuclei", "synthetic-scenes", "dsb2018", "camvid", "busi", "folders"} <= set(list_suites())
    for name in list_suites():
        suite = get_suite(name)
        if name.startswith("synthetic-"):
            assert suite.data_status() == "procedural"
        else:  # a real-data suite's status names the folder where its data was looked for
            assert suite.data_dir is not None and suite.data_status() in ("present", f"missing: {suite.data_dir}")
    if SHARED_DATA.is_dir():
        monkeypatch.chdir(Path(__file__).resolve().parents[3])  # the repository root, beside ../shared
        monkeypatch.delenv("SEGBENCH_DATA", raising=False)
        assert get_suite("dsb2018").data_dir == (SHARED_DATA / "dsb2018-mini").resolve()
        assert get_suite("camvid").data_status() == "present"


# --- split counts and the training recipe ------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, message",
    [
        (("train = 2", "train = 1.5"), r"\[splits\] train = 1\.5 is not valid; expected an integer >= 0, a fraction"),
        (("train = 2", 'train = "most"'), r"\[splits\] train = 'most' is not valid"),
        (("train = 2", "train = -2"), r"\[splits\] train = -2 is not valid"),
    ],
)
def test_bad_split_counts_name_the_suite_file(tmp_path, edit, message):
    path = _write(tmp_path, REAL.replace(*edit))
    with pytest.raises(UsageError, match=f"^{path}: {message}"):
        get_suite(path)


def test_procedural_suites_take_integer_counts_only(tmp_path):
    nuclei = get_suite("synthetic-nuclei").path
    with pytest.raises(UsageError, match=rf"^{nuclei}: --split train=0\.5 is not valid for the procedural source"):
        get_suite("synthetic-nuclei", splits={"train": 0.5})
    path = _write(tmp_path, nuclei.read_text().replace("evaluation = 64", 'evaluation = "all"'))
    with pytest.raises(UsageError, match=r"\[splits\] evaluation = 'all' is not valid for the procedural source"):
        get_suite(path)
    assert get_suite("synthetic-nuclei", splits={"evaluation": 8}).split_sizes["evaluation"] == 8


def test_a_copied_suite_trains_with_the_recipe_it_names(tmp_path):
    from bench.training.recipes import recipe_for, suite_recipe

    built_in = get_suite("dsb2018")
    text = built_in.path.read_text().replace('name = "dsb2018"', 'name = "dsb2018-full"')
    copy = get_suite(_write(tmp_path, text))
    assert copy.name == "dsb2018-full" and copy.recipe == "dsb2018"
    assert suite_recipe("unet", copy) == ("dsb2018", recipe_for("unet", "dsb2018"))
    assert recipe_for("unet", "dsb2018") != recipe_for("unet", "default")
    # without the key: the suite's own name where a recipe has it, else the default recipe
    bare = _write(tmp_path, "\n".join(line for line in text.splitlines() if not line.startswith("recipe")))
    assert suite_recipe("unet", get_suite(bare))[0] == "default"
    assert suite_recipe("unet", get_suite("synthetic-scenes"))[0] == "synthetic-scenes"
    assert suite_recipe("unet", get_suite(_write(tmp_path, REAL)))[0] == "default"


def test_an_unknown_recipe_names_the_file_and_the_valid_ones(tmp_path):
    from bench.training.recipes import suite_recipe

    path = _write(tmp_path, REAL.replace('name = "r"', 'name = "r"\nrecipe = "dsb"'))
    with pytest.raises(
        UsageError, match=rf"^{path}: recipe = 'dsb' is not a training recipe; valid recipes: camvid, default, dsb2018"
    ):
        suite_recipe("unet", get_suite(path))
