"""Suites: fixed data, splits and classes, defined by TOML files in the `suites/` folder.

A suite is everything that must be identical for two runs to be comparable: the data source, the
class table, the input size and normalization, and the seeded split into train / calibration /
evaluation. The data itself comes from the source the file names (`bench.data.sources`), which is
handed a `DataRequest`, not the suite: procedural sources draw their data from the seed, the others
read files from the suite's data folder (`--data-dir`, else `$SEGBENCH_DATA/<data>`, `./data/<data>`
or `../shared/data/<data>`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.request import SPLITS, TUNING_SOURCES, DataRequest, SplitData
from bench.data.sources import SOURCES, get_source, load_split
from bench.errors import UsageError, unknown_name


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    source: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    in_channels: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split_sizes: dict[str, int]
    split_seed: int
    seed: int
    background_class: int | None = None
    ignore_label: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    data: str | None = None  # the data folder's default name (real-data suites)
    data_dir: Path | None = None  # resolved data folder; None for procedural suites
    gradcam_images: int = 4
    gradcam_classes: tuple[int, ...] | None = None  # None: every foreground class
    tuning_from: str = "held-out"  # the tuning split: items no other split uses, or a subset of "train"

    def __post_init__(self) -> None:
        if self.gradcam_classes is None:
            object.__setattr__(self, "gradcam_classes", tuple(self.foreground_classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def foreground_classes(self) -> list[int]:
        """Classes whose Dice is averaged into the headline `dice` column."""
        return [c for c in range(self.num_classes) if c != self.background_class]

    @property
    def procedural(self) -> bool:
        return get_source(self.source).procedural

    @property
    def request(self) -> DataRequest:
        """What the data source is given: the data's identity, without colours or normalization."""
        return DataRequest(
            suite=self.name,
            source=self.source,
            classes=self.classes,
            in_channels=self.in_channels,
            input_size=self.input_size,
            split_sizes={  # the items each split takes from the data: a tuning split drawn from train takes none
                s: n for s, n in self.split_sizes.items() if s != "tuning" or self.tuning_from == "held-out"
            },
            tuning=self.split_sizes["tuning"],
            split_seed=self.split_seed,
            seed=self.seed,
            ignore_label=self.ignore_label,
            tuning_from=self.tuning_from,
            options=self.options,
            data_dir=self.data_dir,
            where=self.path,
        )

    def with_seed(self, seed: int) -> Suite:
        return replace(self, seed=seed)

    def config(self, include_tuning: bool = True) -> dict[str, Any]:
        """Everything that determines the model's input, for cache keys: the data and its normalization
        (a checkpoint's key leaves the tuning split out: it changes no training image)."""
        return {**self.request.config(include_tuning), "mean": self.mean, "std": self.std}

    def data_status(self) -> str:
        """ "procedural", "present", or "missing: <path>" (for `segbench list suites`); present means the
        layout's files are found (not that every file decodes: that is checked when a split is loaded)."""
        if self.procedural:
            return "procedural"
        probe = get_source(self.source).probe
        try:  # the layout's own listing: a folder that exists but holds something else is not "present"
            if probe is not None:
                probe(self.request)
            return "present"
        except (UsageError, OSError):
            return f"missing: {self.data_dir}"

    def load(self, split: str) -> SplitData:
        return load_split(self.request, split)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Model input from [0, 1] images, with the suite's per-channel mean and std."""
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return ((images - mean) / std).astype(np.float32)


def resolve_data_dir(data: str, explicit: Path | None = None) -> Path:
    """The data folder: `explicit` (--data-dir; or `explicit/<data>` when that exists, so one folder of
    data sets serves a run over several suites); else the first that exists of `$SEGBENCH_DATA/<data>`,
    `./data/<data>` and `../shared/data/<data>` (from the current directory); else the first of those,
    so the error names where the data was expected."""
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        return (explicit / data if (explicit / data).is_dir() else explicit).resolve()
    candidates = []
    if env := os.environ.get("SEGBENCH_DATA"):
        candidates.append(Path(env).expanduser() / data)
    candidates += [Path.cwd() / "data" / data, Path.cwd().parent / "shared" / "data" / data]
    found = next((c for c in candidates if c.is_dir()), candidates[0])
    return found.resolve()


_KEYS = {
    "name",
    "description",
    "source",
    "seed",
    "classes",
    "colors",
    "background_class",
    "ignore_label",
    "in_channels",
    "input_size",
    "mean",
    "std",
    "data",
    "splits",
    "options",
    "gradcam",
}


def _parse(path: Path, text: str, data_dir: Path | None = None) -> Suite:
    try:
        raw = tomllib.loads(text)
        splits = raw["splits"]
        classes = tuple(raw["classes"])
        gradcam = raw.get("gradcam", {})
        suite = Suite(
            name=raw["name"],
            description=raw.get("description", ""),
            source=raw["source"],
            classes=classes,
            colors=tuple(tuple(c) for c in raw.get("colors", [[0, 0, 0]] * len(classes))),
            in_channels=int(raw["in_channels"]),
            input_size=tuple(raw["input_size"]),
            mean=tuple(raw["mean"]),
            std=tuple(raw["std"]),
            split_sizes={s: int(splits[s]) if s != "tuning" else int(splits.get(s, 0)) for s in SPLITS},
            split_seed=int(splits["seed"]),
            seed=int(raw.get("seed", 0)),
            background_class=raw.get("background_class"),
            ignore_label=raw.get("ignore_label"),
            options=dict(raw.get("options", {})),
            path=path,
            data=raw.get("data"),
            tuning_from=splits.get("tuning_from", "held-out"),
            gradcam_images=gradcam.get("images", min(4, int(splits["evaluation"]))),
        )
    except (KeyError, TypeError, ValueError, AttributeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: invalid suite file ({type(exc).__name__}: {exc})") from exc
    _validate(path, raw, suite)
    gradcam_classes = (
        tuple(_gradcam_class(path, suite, name) for name in gradcam["classes"]) if "classes" in gradcam else None
    )
    if suite.procedural or suite.data is None:  # _validate made sure a file source names its data
        return replace(suite, gradcam_classes=gradcam_classes)
    return replace(suite, gradcam_classes=gradcam_classes, data_dir=resolve_data_dir(suite.data, data_dir))


def _validate(path: Path, raw: dict[str, Any], suite: Suite) -> None:
    """Checks with one-line messages naming the file, so a typo in a suite file fails before any work."""

    def bad(message: str) -> UsageError:
        return UsageError(f"{path}: {message}")

    if unknown := sorted(set(raw) - _KEYS):
        raise bad(f"unknown key '{unknown[0]}'; valid keys: {', '.join(sorted(_KEYS))}")
    if suite.source not in SOURCES:
        raise bad(f"unknown suite source '{suite.source}'; valid suite sources: {', '.join(sorted(SOURCES))}")
    n = suite.num_classes
    if n < 2 or len(set(suite.classes)) != n or not all(isinstance(c, str) and c for c in suite.classes):
        raise bad(f"classes = {list(suite.classes)} is not valid; expected at least 2 distinct names")
    if len(suite.colors) != n or not all(
        len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in suite.colors
    ):
        raise bad(f"colors needs one [r, g, b] (0..255) per class ({n}), got {[list(c) for c in suite.colors]}")
    if suite.in_channels not in (1, 3) or len(suite.mean) != suite.in_channels or len(suite.std) != suite.in_channels:
        raise bad(
            f"in_channels = {suite.in_channels} with mean {list(suite.mean)} and std {list(suite.std)}; "
            "expected 1 or 3 channels and one mean and std per channel"
        )
    if any(not s > 0 for s in suite.std):
        raise bad(f"std = {list(suite.std)} is not valid; expected positive numbers")
    if len(suite.input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in suite.input_size):
        raise bad(f"input_size = {list(suite.input_size)} is not valid; expected [height, width]")
    if suite.background_class is not None and suite.background_class not in range(n):
        raise bad(f"background_class = {suite.background_class} is not a class index (0..{n - 1})")
    if suite.ignore_label is not None and (not isinstance(suite.ignore_label, int) or 0 <= suite.ignore_label < n):
        raise bad(
            f"ignore_label = {suite.ignore_label} is not valid; "
            f"expected an integer outside the class indices 0..{n - 1}"
        )
    if (
        any(v < 0 for v in suite.split_sizes.values())
        or suite.split_sizes["train"] < 1
        or suite.split_sizes["evaluation"] < 1
    ):
        raise bad(f"[splits] {suite.split_sizes} is not valid; expected counts >= 0 with train and evaluation >= 1")
    if unknown_split := sorted(set(raw["splits"]) - {*SPLITS, "seed", "tuning_from"}):
        raise bad(f"[splits] has no key '{unknown_split[0]}'; valid keys: seed, {', '.join(SPLITS)}, tuning_from")
    if suite.tuning_from not in TUNING_SOURCES:
        raise bad(
            f"[splits] tuning_from = {suite.tuning_from!r} is not valid; expected one of {', '.join(TUNING_SOURCES)}"
        )
    if suite.tuning_from == "train" and suite.split_sizes["tuning"] > suite.split_sizes["train"]:
        raise bad(
            f"[splits] tuning = {suite.split_sizes['tuning']} is drawn from the training split, "
            f"which has only {suite.split_sizes['train']} items"
        )
    gradcam = raw.get("gradcam", {})
    if not isinstance(gradcam, dict) or (unknown := sorted(set(gradcam) - {"images", "classes"})):
        raise bad(f"[gradcam] takes images and classes only (got {gradcam!r})")
    images = suite.gradcam_images
    if not isinstance(images, int) or isinstance(images, bool) or not 1 <= images <= suite.split_sizes["evaluation"]:
        raise bad(
            f"[gradcam] images = {images!r} is not valid; expected 1..{suite.split_sizes['evaluation']} "
            "(the evaluation split's size)"
        )
    if "classes" in gradcam and (not isinstance(gradcam["classes"], list) or not gradcam["classes"]):
        raise bad(f"[gradcam] classes = {gradcam['classes']!r} is not valid; expected a list of class names")
    if suite.procedural:
        if suite.data is not None:
            raise bad(
                f"data = {suite.data!r} is not valid for the procedural source '{suite.source}' (it reads no files)"
            )
    elif not isinstance(suite.data, str) or not suite.data:
        raise bad(f"source '{suite.source}' reads files: add data = \"<folder name>\", the data folder's default name")
    get_source(suite.source).check(suite.request)


def _gradcam_class(path: Path, suite: Suite, name: Any) -> int:
    if name not in suite.classes:
        raise UsageError(f"{path}: [gradcam] class {name!r} is not one of the classes ({', '.join(suite.classes)})")
    return suite.classes.index(name)


def _suite_files() -> dict[str, tuple[Path, str]]:
    files: dict[str, tuple[Path, str]] = {}
    for entry in resources.files("suites").iterdir():
        if entry.name.endswith(".toml"):
            files[entry.name[: -len(".toml")]] = (Path(str(entry)), entry.read_text())
    return files


def list_suites() -> list[str]:
    return sorted(_suite_files())


def get_suite(name: str, data_dir: Path | None = None) -> Suite:
    """A suite by name (a file `suites/<name>.toml`) or by path to a TOML file.

    `data_dir` (--data-dir) is the data folder of a real-data suite; procedural suites ignore it.
    """
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"suite file '{name}' does not exist")
        return _parse(path, path.read_text(), data_dir)
    files = _suite_files()
    if name not in files:
        raise unknown_name("suite", name, list(files))
    return _parse(*files[name], data_dir)
