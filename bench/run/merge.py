"""`segbench merge`: the folders of a sharded run (`segbench run --shard K/N`, one per CI job) joined into
one run folder, as if one machine had run the whole matrix, except that every row says who measured it.

The rules:

- **One configuration.** The inputs' run.json agree on every key but `shard`, `results_root` and
  `progress`; files (data_dir, weights, onnx, checkpoint, suite files) compare by name, since each
  machine has its own paths. Otherwise: a usage error naming the two folders and the first key.
- **One row per cell.** A cell in two inputs is a duplicate: each is named, nothing is written (exit 1).
  With `prefer="newest"` a duplicated cell's whole comparison group is taken from the newest input
  holding it (env.json's date; on a tie the later one given) and the others' rows of that group are
  dropped, each drop named: a group never mixes two runs, so its `speedup_vs_fp32` stay same-run ratios.
- **Nothing missing.** A cell of the planned matrix (recorded by each shard in env.json) that no input
  holds is named (exit 1), and the folder is written all the same: partial results are usable.
- **Who measured it.** Each row gets `machine` (`bench.environment.machine_label`), `hostname`, `shard`
  (K/N) and `source_run` (the folder as given) from its input, unless it has them (a merged input).
- **env.json** is the first input's, with `shards` (every input's env) and the planned `matrix`; a
  fingerprint field (CPU, cores, GPU, threads) that differs between inputs reads "a | b", so that
  `segbench compare` warns about the hardware as it does for two machines.

Samples, per-image and Grad-CAM tables, per_backend.json, figures and logs are taken along
(`RunStore.absorb`); report.md and report.html are written from the merged tables.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cache import atomic_write_bytes
from bench.environment import combined_fingerprint, machine_fingerprint, machine_label
from bench.errors import UsageError
from bench.results.files import check_run_folder, read_json, read_results
from bench.results.row import cell_id
from bench.results.speedup import group_of
from bench.results.store import RunStore
from bench.run.config import RUN_FILE
from bench.run.shard import assign_groups, group_key

ENV_FILE = "env.json"
NOT_COMPARED = ("shard", "results_root", "progress")  # run.json keys shards may differ in
FILE_KEYS = ("data_dir", "weights", "onnx", "checkpoint")  # compared by file name: each machine has its paths
ROW_COLUMNS = ("machine", "hostname", "shard", "source_run")
PREFER_CHOICES = ("newest",)


@dataclass(frozen=True)
class MergeResult:
    out: Path
    written: bool
    rows: int  # rows in the merged folder (0 when nothing was written)
    duplicates: tuple[str, ...] = ()  # one line per cell found in more than one input (nothing written)
    missing: tuple[str, ...] = ()  # one line per planned cell no input holds (written all the same)
    warnings: tuple[str, ...] = ()  # dropped rows (prefer newest), several machines or commits, mixed groups

    @property
    def exit_code(self) -> int:
        """0: one complete run; 1: a duplicate (nothing written) or a missing cell (written)."""
        return 1 if self.duplicates or self.missing else 0


@dataclass(frozen=True)
class _Input:
    path: Path  # as given
    config: dict[str, Any]
    env: dict[str, Any]
    groups: dict[str, str]  # cell id -> group key, in row order
    columns: frozenset[str]

    @property
    def shard(self) -> str:
        shard = self.env.get("shard")
        return f"{shard['index']}/{shard['count']}" if isinstance(shard, dict) else ""

    @property
    def date(self) -> dt.datetime:
        try:
            date = dt.datetime.fromisoformat(str(self.env.get("date")))
        except ValueError:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return date if date.tzinfo else date.replace(tzinfo=dt.UTC)

    def shard_records(self) -> list[dict[str, Any]]:
        """Its env.json `shard` entry, or those of the shards a merged input joined."""
        if isinstance(shard := self.env.get("shard"), dict):
            return [shard]
        return [part["shard"] for part in self.env.get("shards") or [] if isinstance(part.get("shard"), dict)]

    def matrix(self) -> dict[str, list[str]]:
        """The planned matrix this input knows (a shard's record, or a merged run's): group -> cell ids."""
        shard = self.env.get("shard")
        found = shard.get("matrix") if isinstance(shard, dict) else self.env.get("matrix")
        return dict(found) if isinstance(found, dict) else {}


def merge_run_folders(inputs: Sequence[Path], out: Path, prefer: str | None = None) -> MergeResult:
    """Join run folders of one configuration (normally the shards of one matrix) into a new folder `out`
    (absent or empty). Usage errors (a folder that is no run, two configurations, a non-empty `out`)
    raise `UsageError` before anything is written; duplicates and missing cells are in the result."""
    from bench.report.files import write_reports

    if prefer is not None and prefer not in PREFER_CHOICES:
        raise UsageError(f"--prefer '{prefer}' is not valid; expected {', '.join(PREFER_CHOICES)}")
    folders = [_read_input(path) for path in _check_paths(inputs, out)]
    _check_one_configuration(folders)
    owners: dict[str, list[int]] = {}
    for i, folder in enumerate(folders):
        for cell in folder.groups:
            owners.setdefault(cell, []).append(i)
    duplicated = {cell: where for cell, where in owners.items() if len(where) > 1}
    duplicates = tuple(
        f"{cell}: in {' and '.join(str(folders[i].path) for i in where)}" for cell, where in duplicated.items()
    )
    if duplicates and prefer is None:
        return MergeResult(out, False, 0, duplicates=duplicates)
    order, replaced, warnings = _resolve(folders, duplicated)
    matrix, matrix_warnings = _planned_matrix(folders)
    warnings += matrix_warnings

    store = RunStore(out)
    for i in order:
        folder = folders[i]
        if taken_over := {cell for cell in store.finished_cells() if _group_of(cell, folders) in replaced[i]}:
            store.forget(taken_over)  # an older input's rows of a group this newer input holds (prefer newest)
        if (folder.path / "results.parquet").is_file():
            store.absorb(folder.path, {k: v for k, v in _row_columns(folder).items() if k not in folder.columns})
        _copy_files(folder.path, out)
    store.write_table()
    kept = store.finished_cells()
    missing = _missing(matrix, kept, folders)
    warnings += _absent_shards(folders) + _machine_warnings(folders) + _mixed_groups(store.rows(), folders)
    store.write_env(_merged_env(folders, matrix))
    atomic_write_bytes(out / RUN_FILE, json.dumps(_merged_config(folders[0], out), indent=2).encode())
    write_reports(out)
    return MergeResult(out, True, len(kept), (), missing, tuple(warnings))


def _check_paths(inputs: Sequence[Path], out: Path) -> list[Path]:
    if not inputs:
        raise UsageError("segbench merge needs at least one run folder")
    seen: dict[Path, Path] = {}
    for path in inputs:
        if not path.is_dir():
            raise UsageError(f"run folder '{path}' does not exist")
        if not (path / RUN_FILE).is_file():
            raise UsageError(f"'{path}' has no {RUN_FILE}; expected a segbench run folder")
        if path.resolve() in seen:
            raise UsageError(f"'{path}' and '{seen[path.resolve()]}' are the same run folder; give it once")
        seen[path.resolve()] = path
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out '{out}' exists and is not an empty folder; merge writes a new run folder")
    for resolved, path in seen.items():
        if out.resolve() == resolved or resolved in out.resolve().parents:
            raise UsageError(f"--out '{out}' lies in the input folder '{path}'")
    return list(inputs)


def _read_input(path: Path) -> _Input:
    check_run_folder(path)  # every file it holds, before anything is written
    config = read_json(path / RUN_FILE)
    env = read_json(path / ENV_FILE) if (path / ENV_FILE).is_file() else {}
    groups: dict[str, str] = {}
    columns: frozenset[str] = frozenset()
    if (path / "results.parquet").is_file():
        table = read_results(path)
        columns = frozenset(table.columns)
        for row in table.to_dict("records"):
            groups[cell_id(row)] = group_key(group_of(row))
    return _Input(path, config, env, groups, columns)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in config.items() if k not in NOT_COMPARED}
    for key in FILE_KEYS:
        if found.get(key):
            found[key] = Path(found[key]).name
    found["suites"] = [Path(s).name if str(s).endswith(".toml") else s for s in found.get("suites", [])]
    return found


def _check_one_configuration(folders: list[_Input]) -> None:
    first = _comparable(folders[0].config)
    for other in folders[1:]:
        theirs = _comparable(other.config)
        for key in dict.fromkeys([*first, *theirs]):
            if first.get(key) != theirs.get(key):
                raise UsageError(
                    f"'{folders[0].path}' and '{other.path}' are not parts of one run: their {RUN_FILE} differ in "
                    f"'{key}' ({_short(first.get(key))} vs {_short(theirs.get(key))})"
                )


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _group_of(cell: str, folders: list[_Input]) -> str:
    return next(folder.groups[cell] for folder in folders if cell in folder.groups)


def _resolve(
    folders: list[_Input], duplicated: dict[str, list[int]]
) -> tuple[list[int], dict[int, set[str]], list[str]]:
    """The order inputs are taken in, which groups each takes over from those taken before it (the groups of
    duplicated cells: the newest input holding such a group takes it whole), and a line per dropped row."""
    if not duplicated:
        return list(range(len(folders))), {i: set() for i in range(len(folders))}, []
    order = sorted(range(len(folders)), key=lambda i: (folders[i].date, i))  # newest last: it replaces
    contested = {_group_of(cell, folders) for cell in duplicated}
    replaced: dict[int, set[str]] = {i: contested & set(folders[i].groups.values()) for i in order}
    lines = []
    for group in sorted(contested):
        holders = [i for i in order if group in replaced[i]]
        winner = holders[-1]
        for loser in holders[:-1]:
            cells = [cell for cell, g in folders[loser].groups.items() if g == group]
            lines += [
                f"{cell}: measured in {folders[loser].path} and {folders[winner].path}; kept the newer "
                f"({folders[winner].env.get('date')}), the whole group {group} from it"
                for cell in cells
            ]
    return order, replaced, lines


def _planned_matrix(folders: list[_Input]) -> tuple[dict[str, list[str]], list[str]]:
    """The whole matrix as the inputs recorded it (group -> cell ids, run order); empty when none did."""
    matrix: dict[str, list[str]] = {}
    warnings = []
    for folder in folders:
        for group, cells in folder.matrix().items():
            if group in matrix and matrix[group] != list(cells):
                warnings.append(f"{folder.path} plans group {group} with other cells: {', '.join(cells)}")
            matrix.setdefault(group, list(cells))
    if not matrix:
        warnings.append("no input records its planned matrix (not a shard): missing cells cannot be told")
    return matrix, warnings


def _missing(matrix: dict[str, list[str]], kept: set[str], folders: list[_Input]) -> tuple[str, ...]:
    """A line per planned cell no input holds, naming the shard that was to measure it where the inputs
    agree on the shard count."""
    counts = {shard["count"] for folder in folders for shard in folder.shard_records()}
    count = counts.pop() if len(counts) == 1 else None
    owner = assign_groups(matrix, count) if count is not None else {}
    return tuple(
        f"{cell}: in no input (group {group}" + (f", shard {owner[group]}/{count})" if owner else ")")
        for group, cells in matrix.items()
        for cell in cells
        if cell not in kept
    )


def _absent_shards(folders: list[_Input]) -> list[str]:
    """Shards of an N-way split that no input is (a CI job whose folder was not handed over)."""
    shards = [shard for folder in folders for shard in folder.shard_records()]
    counts = {shard["count"] for shard in shards}
    if len(counts) != 1:
        return [f"the inputs are shards of {' and '.join(map(str, sorted(counts)))}-way splits"] if counts else []
    count = counts.pop()
    absent = sorted(set(range(1, count + 1)) - {shard["index"] for shard in shards})
    return [f"no input is shard {', '.join(f'{k}/{count}' for k in absent)}"] if absent else []


def _row_columns(folder: _Input) -> dict[str, Any]:
    return {
        "machine": machine_label(folder.env),
        "hostname": folder.env.get("hostname"),
        "shard": folder.shard or None,
        "source_run": str(folder.path),
    }


def _copy_files(source: Path, out: Path) -> None:
    """Figures (not the dice box chart, which the report redraws from the merged table) and logs; a later
    input's file of the same name replaces an earlier one's (with `prefer`, inputs come oldest first)."""
    for sub in ("figures", "logs"):
        for path in sorted((source / sub).glob("*")) if (source / sub).is_dir() else []:
            if path.is_file() and path.name != "dice_box.png":
                (out / sub).mkdir(exist_ok=True)
                shutil.copyfile(path, out / sub / path.name)


def _machine_warnings(folders: list[_Input]) -> list[str]:
    lines = []
    machines: dict[tuple, list[_Input]] = {}
    for folder in folders:
        machines.setdefault(machine_fingerprint(folder.env), []).append(folder)
    if len(machines) > 1:
        named = "; ".join(
            f"{machine_label(same[0].env)}, {same[0].env.get('threads')} threads: "
            + ", ".join(str(folder.path) for folder in same)
            for same in machines.values()
        )
        lines.append(
            f"the inputs were measured on {len(machines)} machines ({named}); each row's machine and hostname "
            "columns say which, and latencies of different machines do not compare"
        )
    commits = list(dict.fromkeys(str(folder.env.get("git_commit")) for folder in folders))
    if len(commits) > 1:
        lines.append(f"the inputs were measured at {len(commits)} commits: {', '.join(c[:12] for c in commits)}")
    return lines


def _mixed_groups(rows: Iterable[dict[str, Any]], folders: list[_Input]) -> list[str]:
    """A group whose rows come from two inputs (no cell twice, but split): its speedups are not one run's."""
    sources: dict[str, set[str]] = {}
    for row in rows:
        sources.setdefault(_group_of(cell_id(row), folders), set()).add(str(row.get("source_run")))
    return [
        f"group {group}: rows from {len(where)} runs ({', '.join(sorted(where))}); their speedup_vs_fp32 are "
        "not ratios of one run"
        for group, where in sources.items()
        if len(where) > 1
    ]


def _merged_env(folders: list[_Input], matrix: dict[str, list[str]]) -> dict[str, Any]:
    env = {k: v for k, v in folders[0].env.items() if k not in ("shard", "shards", "matrix")}
    env.update(combined_fingerprint([folder.env for folder in folders]))
    checkpoints: dict[str, Any] = {}
    for folder in folders:
        checkpoints.update(folder.env.get("checkpoints") or {})
    parts = []
    for folder in folders:
        nested = folder.env.get("shards")
        if nested:  # a merged input: its own parts
            parts += nested
            continue
        shard = folder.env.get("shard")
        parts.append(
            {
                **{k: v for k, v in folder.env.items() if k != "shard"},
                "run": str(folder.path),
                "machine": machine_label(folder.env),
                "shard": {k: shard[k] for k in ("index", "count", "groups")} if isinstance(shard, dict) else None,
                "rows": len(folder.groups),
            }
        )
    return {**env, "checkpoints": checkpoints, "shards": parts, "matrix": matrix}


def _merged_config(first: _Input, out: Path) -> dict[str, Any]:
    """The inputs' shared run.json, for the whole matrix: `segbench run --resume` could fill in what is missing."""
    return {**first.config, "shard": None, "results_root": str(out.parent)}
