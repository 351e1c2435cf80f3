"""Reading a run folder's files, where a damaged or unreadable one is a usage error naming the file.

A run file can be cut short (a copy interrupted, a full disk) or edited by hand. pyarrow's and json's
own errors reach the user as a traceback of thirty lines and exit code 1, which for `segbench compare`
means "a regression". Every command that reads a run folder (compare, report, history, export, merge,
run --resume) reads it through here: one line naming the file and what is wrong, exit code 2.

A run folder's layout has a version (`SCHEMA_VERSION`): env.json's `schema_version` and each Parquet
table's schema metadata (`segbench_schema_version`). A file without one was written before versions
existed (version 0) and reads as it always did; one newer than this code knows is refused in one line
naming both versions, rather than misread by a reader that does not know what changed.

A table is read from one snapshot of its bytes. Writers replace a table atomically while a run or tune
goes on (`atomic_write_bytes`), and `pq.read_table(path)` opens the file twice (the footer, then the
pages): a replace between the two opens mixed two versions and failed with "Page was smaller than
expected" (31 of 500 reads of a table rewritten in a loop; 0 of 500 from one read of the bytes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import UsageError, one_line
from bench.results.row import IDENTITY_COLUMNS

# every table and JSON file a run folder may hold (results.csv and report.* are written, never read back)
TABLES = ("results", "samples", "per_image", "gradcam", "profile")
JSON_FILES = ("env.json", "run.json", "per_backend.json")
RESULTS_COLUMNS = (*IDENTITY_COLUMNS[:-1], "status")  # input_size is filled where absent (`with_input_size`)
# a run folder's tables of cells: each row carries the cell's identity, `input_size` included (`read_table`)
CELL_TABLES = frozenset(
    f"{stem}.parquet" for stem in ("results", "samples", "rounds", "profile", "per_image", "gradcam")
)
# the run folder's layout; raise it when a reader of an older segbench would misread a new file
SCHEMA_VERSION = 1
PARQUET_VERSION_KEY = b"segbench_schema_version"
VERSIONED_JSON = ("env.json",)  # the JSON files that carry `schema_version` (decision.json has its own)
_ARROW_PREFIX = re.compile(r"^ArrowInvalid: Could not open Parquet input source '[^']*': ")


def _damaged(path: Path, what: str, exc: BaseException) -> UsageError:
    cause = _ARROW_PREFIX.sub("", one_line(exc))
    return UsageError(f"{path}: damaged or unreadable {what} ({cause}); rerun, or restore the file")


def versioned_metadata(metadata: dict[bytes, bytes] | None) -> dict[bytes, bytes]:
    """A Parquet schema's metadata with this code's schema version added (pandas' own entry kept)."""
    return {**(metadata or {}), PARQUET_VERSION_KEY: str(SCHEMA_VERSION).encode()}


def check_version(path: Path, found: object) -> int:
    """The schema version a file declares (None: 0, written before versions); newer than this code's, or
    not a version at all, is a usage error naming both."""
    if found is None:
        return 0
    text = found.decode(errors="replace") if isinstance(found, bytes) else found  # Parquet metadata: bytes
    if isinstance(text, bool) or not isinstance(text, (int, str)) or not str(text).strip().isdigit():
        raise UsageError(f"{path}: schema version {text!r} is not a number; expected a file segbench wrote")
    version = int(text)
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"{path}: written with run folder schema version {version}, this segbench reads up to version "
            f"{SCHEMA_VERSION}; upgrade segbench to read it"
        )
    return version


def read_table(path: Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """A Parquet table of a run folder, with the `required` columns; a table of cells (`CELL_TABLES`) always
    has `input_size` (`with_input_size`)."""
    try:
        # one read of the bytes: the table and its schema metadata (the version), from one version of the file
        arrow = pq.read_table(pa.BufferReader(path.read_bytes()))
        table = arrow.to_pandas()
        metadata = arrow.schema.metadata or {}
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; expected a segbench run folder") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _damaged(path, "Parquet table", exc) from None
    check_version(path, metadata.get(PARQUET_VERSION_KEY))
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise UsageError(f"{path}: a table without the column(s) {', '.join(missing)}; expected one segbench wrote")
    return with_input_size(table) if path.name in CELL_TABLES else table


def read_results(run_dir: Path) -> pd.DataFrame:
    """results.parquet: one row per cell, with the cell's identity and status. A table from before shape
    sweeps has no `input_size`: every row of it was at the suite's own size, which the column spells ""."""
    return read_table(run_dir / "results.parquet", RESULTS_COLUMNS)


def with_input_size(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its `input_size` identity column: "" (the suite's own size) in a table from before
    shape sweeps, and where a row has none."""
    if "input_size" not in table.columns:
        return table.assign(input_size="")
    return table.assign(input_size=table["input_size"].fillna("").astype(str))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object of a run folder (env.json, run.json, per_backend.json, ...)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; expected a segbench run folder") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _damaged(path, "JSON file", exc) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a JSON {type(data).__name__}, expected an object; not a file segbench wrote")
    if path.name in VERSIONED_JSON:
        check_version(path, data.get("schema_version"))
    return data


def check_run_folder(run_dir: Path) -> None:
    """Read every table and JSON file the folder holds, so that a command that will write (merge, run
    --resume) stops with a usage error before it writes anything, not half way."""
    for stem in TABLES:
        if (path := run_dir / f"{stem}.parquet").is_file():
            read_table(path, RESULTS_COLUMNS if stem == "results" else ())
    for name in JSON_FILES:
        if (path := run_dir / name).is_file():
            read_json(path)
