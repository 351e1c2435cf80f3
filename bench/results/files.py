"""Reading a run folder's files, where a damaged or unreadable one is a usage error naming the file.

A run file can be cut short (a copy interrupted, a full disk) or edited by hand. pyarrow's and json's
own errors reach the user as a traceback of thirty lines and exit code 1, which for `segbench compare`
means "a regression". Every command that reads a run folder (compare, report, history, export, merge,
run --resume) reads it through here: one line naming the file and what is wrong, exit code 2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from bench.errors import UsageError, one_line
from bench.results.row import IDENTITY_COLUMNS

# every table and JSON file a run folder may hold (results.csv and report.* are written, never read back)
TABLES = ("results", "samples", "per_image", "gradcam", "profile")
JSON_FILES = ("env.json", "run.json", "per_backend.json")
RESULTS_COLUMNS = (*IDENTITY_COLUMNS, "status")
_ARROW_PREFIX = re.compile(r"^ArrowInvalid: Could not open Parquet input source '[^']*': ")


def _damaged(path: Path, what: str, exc: BaseException) -> UsageError:
    cause = _ARROW_PREFIX.sub("", one_line(exc))
    return UsageError(f"{path}: damaged or unreadable {what} ({cause}); rerun, or restore the file")


def read_table(path: Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """A Parquet table of a run folder, with the `required` columns."""
    try:
        table = pd.read_parquet(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; expected a segbench run folder") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _damaged(path, "Parquet table", exc) from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise UsageError(f"{path}: a table without the column(s) {', '.join(missing)}; expected one segbench wrote")
    return table


def read_results(run_dir: Path) -> pd.DataFrame:
    """results.parquet: one row per cell, with the cell's identity and status."""
    return read_table(run_dir / "results.parquet", RESULTS_COLUMNS)


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
