"""Suites: fixed data, splits and classes, defined by TOML files in the `suites/` folder.

Just over 400 lines (412): the suite record and its TOML reader are one format, read and checked in one
place (every key's error message beside the key); splitting the reader from the record would spread one
file format over two modules.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.request import SPLITS, TUNING_SOURCES, Count, DataRequest, SplitData
from bench.data.sources import SOURCES, get_source, load_split
from bench.data.splits import COUNT_HELP, is_count, parse_count, resolve_counts, share, shared_all
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
    split_sizes: dict[str, int]  # resolved counts; while `unresolved`, only the integer ones
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
    split_counts: dict[str, Count] = field(default_factory=dict)  # as the file (and --split) give them
    unresolved: str | None = None  # why a fraction or "all" could not be resolved: the data's own error
    recipe: str | None = None  # the training recipe the file names (bench.training.recipes.suite_recipe)

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
        """What the data source is given: the data's identity, without colours or normalization. Where the
        counts could not be resolved (the data folder is missing or cannot be listed), the data's own
        error is raised here, when the data is needed, as it would be on loading."""
        if self.unresolved is not None:
            raise UsageError(self.unresolved)
        return self._request()

    def _request(self) -> DataRequest:
        """The request with the counts resolved so far (the source's checks read only its options)."""
        return DataRequest(
            suite=self.name,
            source=self.source,
            classes=self.classes,
            in_channels=self.in_channels,
            input_size=self.input_size,
            split_sizes={  # the items each split takes from the data: a tuning split drawn from train takes none
                s: n for s, n in self.split_sizes.items() if s != "tuning" or self.tuning_from == "held-out"
            },
            tuning=self.split_sizes.get("tuning", 0),
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
    "recipe",
}


def _parse(path: Path, text: str, data_dir: Path | None = None, splits: Mapping[str, Count] | None = None) -> Suite:
    overrides = dict(splits or {})
    try:
        raw = tomllib.loads(text)
        table = raw["splits"]
        counts = {s: overrides[s] if s in overrides else table[s] if s != "tuning" else table.get(s, 0) for s in SPLITS}
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
            split_sizes={s: c for s, c in counts.items() if isinstance(c, int) and not isinstance(c, bool)},
            split_seed=int(table["seed"]),
            seed=int(raw.get("seed", 0)),
            background_class=raw.get("background_class"),
            ignore_label=raw.get("ignore_label"),
            options=dict(raw.get("options", {})),
            path=path,
            data=raw.get("data"),
            tuning_from=table.get("tuning_from", "held-out"),
            gradcam_images=gradcam.get("images", 4),  # by default at most the evaluation split's size (below)
            split_counts=counts,
        )
    except (KeyError, TypeError, ValueError, AttributeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: invalid suite file ({type(exc).__name__}: {exc})") from exc
    _validate(path, raw, suite, overrides)
    gradcam_classes = (
        tuple(_gradcam_class(path, suite, name) for name in gradcam["classes"]) if "classes" in gradcam else None
    )
    suite = replace(suite, gradcam_classes=gradcam_classes, recipe=_recipe(path, raw))
    if not suite.procedural and suite.data is not None:  # _validate made sure a file source names its data
        suite = replace(suite, data_dir=resolve_data_dir(suite.data, data_dir))
        fitted = get_source(suite.source).fit(suite._request())  # e.g. camvid's test/ where the data has one
        suite = replace(suite, options=dict(fitted.options), tuning_from=fitted.tuning_from)
    suite = _resolve_counts(path, suite, overrides)
    if "images" not in gradcam and "evaluation" in suite.split_sizes:
        suite = replace(suite, gradcam_images=min(4, suite.split_sizes["evaluation"]))
    _validate_sizes(path, suite)
    return suite


def _count_label(split: str, suite: Suite, overrides: Mapping[str, Count]) -> str:
    """How a count is named in a message: where it was given."""
    count = suite.split_counts[split]
    return f"--split {split}={count}" if split in overrides else f"[splits] {split} = {count!r}"


def _resolve_counts(path: Path, suite: Suite, overrides: Mapping[str, Count]) -> Suite:
    """Fractions and "all" as integers, taken of the pool each split draws from (listed now, so a data
    folder that grows changes the counts and the cache keys with them); a tuning split drawn from the
    training split takes its share of that split. Where the data cannot be listed, the counts stay
    unresolved and the data's error is raised when the data is needed (as a missing folder always was)."""
    counts = suite.split_counts
    if all(isinstance(c, int) for c in counts.values()):
        return suite
    drawn = {s: c for s, c in counts.items() if c != 0 and (s != "tuning" or suite.tuning_from == "held-out")}
    sizes = {s: c for s, c in counts.items() if isinstance(c, int)}
    if not all(isinstance(c, int) for c in drawn.values()):
        count = get_source(suite.source).count
        assert count is not None  # _validate: a procedural source takes integers only
        try:
            pools = {s: count(suite._request(), s) for s in drawn}
        except OSError as exc:
            return replace(suite, unresolved=f"{exc.filename}: cannot list the data ({exc.strerror})")
        except UsageError as exc:
            return replace(suite, unresolved=str(exc))
        if both := shared_all(drawn, {s: folder for s, (folder, _) in pools.items()}):
            first, second = (_count_label(s, suite, overrides) for s in both)
            raise UsageError(
                f"{path}: {first} and {second} both take all of {pools[both[0]][0]}; "
                'at most one split of a folder may be "all"'
            )
        try:
            sizes |= resolve_counts(drawn, pools)
        except UsageError as exc:
            return replace(suite, unresolved=str(exc))
    if suite.tuning_from == "train":
        sizes["tuning"] = share(counts["tuning"], sizes["train"])
    return replace(suite, split_sizes={s: sizes[s] for s in SPLITS})


def _recipe(path: Path, raw: dict[str, Any]) -> str | None:
    """The training recipe the file names (`recipe = "dsb2018"`), or None. Which names exist is the training
    package's business (`bench.training.recipes.suite_recipe` checks it before any work)."""
    if "recipe" not in raw:
        return None
    if not isinstance(raw["recipe"], str) or not raw["recipe"]:
        raise UsageError(f"{path}: recipe = {raw['recipe']!r} is not valid; expected the name of a training recipe")
    return raw["recipe"]


def _validate(path: Path, raw: dict[str, Any], suite: Suite, overrides: Mapping[str, Count]) -> None:
    """Checks with one-line messages naming the file, so a typo in a suite file fails before any work
    (those of the split sizes once they are resolved: `_validate_sizes`)."""

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
    for split, count in suite.split_counts.items():
        if not is_count(count):
            raise bad(f"{_count_label(split, suite, overrides)} is not valid; expected {COUNT_HELP}")
        if not isinstance(count, int) and get_source(suite.source).procedural:
            raise bad(
                f"{_count_label(split, suite, overrides)} is not valid for the procedural source '{suite.source}', "
                "which generates its images; expected an integer"
            )
    if unknown_split := sorted(set(raw["splits"]) - {*SPLITS, "seed", "tuning_from"}):
        raise bad(f"[splits] has no key '{unknown_split[0]}'; valid keys: seed, {', '.join(SPLITS)}, tuning_from")
    if suite.tuning_from not in TUNING_SOURCES:
        raise bad(
            f"[splits] tuning_from = {suite.tuning_from!r} is not valid; expected one of {', '.join(TUNING_SOURCES)}"
        )
    gradcam = raw.get("gradcam", {})
    if not isinstance(gradcam, dict) or (unknown := sorted(set(gradcam) - {"images", "classes"})):
        raise bad(f"[gradcam] takes images and classes only (got {gradcam!r})")
    if "classes" in gradcam and (not isinstance(gradcam["classes"], list) or not gradcam["classes"]):
        raise bad(f"[gradcam] classes = {gradcam['classes']!r} is not valid; expected a list of class names")
    if suite.procedural:
        if suite.data is not None:
            raise bad(
                f"data = {suite.data!r} is not valid for the procedural source '{suite.source}' (it reads no files)"
            )
    elif not isinstance(suite.data, str) or not suite.data:
        raise bad(f"source '{suite.source}' reads files: add data = \"<folder name>\", the data folder's default name")
    get_source(suite.source).check(suite._request())


def _validate_sizes(path: Path, suite: Suite) -> None:
    """The checks of the resolved counts (of the integer ones while the data cannot be listed)."""

    def bad(message: str) -> UsageError:
        return UsageError(f"{path}: {message}")

    sizes = suite.split_sizes
    written = "" if sizes == suite.split_counts else f" (from {suite.split_counts})"
    if sizes.get("train", 1) < 1 or sizes.get("evaluation", 1) < 1:
        raise bad(f"[splits] {sizes}{written} is not valid; expected counts >= 0 with train and evaluation >= 1")
    if suite.tuning_from == "train" and "tuning" in sizes and "train" in sizes and sizes["tuning"] > sizes["train"]:
        raise bad(
            f"[splits] tuning = {sizes['tuning']} is drawn from the training split, "
            f"which has only {sizes['train']} items"
        )
    images, evaluation = suite.gradcam_images, sizes.get("evaluation")
    if (
        not isinstance(images, int)
        or isinstance(images, bool)
        or images < 1
        or (evaluation is not None and images > evaluation)
    ):
        raise bad(
            f"[gradcam] images = {images!r} is not valid; expected 1..{evaluation or 'N'} (the evaluation split's size)"
        )


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


def get_suite(name: str, data_dir: Path | None = None, splits: Mapping[str, Count] | None = None) -> Suite:
    """A suite by name (a file `suites/<name>.toml`) or by path to a TOML file.

    `data_dir` (--data-dir) is the data folder of a real-data suite; procedural suites ignore it.
    `splits` (--split) replaces counts of the file's [splits], as `split_overrides` parsed them.
    """
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"suite file '{name}' does not exist")
        return _parse(path, path.read_text(), data_dir, splits)
    files = _suite_files()
    if name not in files:
        raise unknown_name("suite", name, list(files))
    return _parse(*files[name], data_dir, splits)


def split_overrides(items: Iterable[str]) -> dict[str, Count]:
    """`--split NAME=COUNT` options (the last one of a name wins), checked before anything is read."""
    overrides: dict[str, Count] = {}
    for item in items:
        split, eq, text = item.partition("=")
        try:
            if not eq or split.strip() not in SPLITS:
                raise ValueError(item)
            overrides[split.strip()] = parse_count(text)
        except ValueError:
            raise UsageError(
                f"--split '{item}' is not valid; expected NAME=COUNT with NAME one of {', '.join(SPLITS)} "
                f"and COUNT {COUNT_HELP}"
            ) from None
    return overrides
