"""The run folder: every table rewritten atomically after each finished cell, so a run that dies
keeps everything it finished and `--resume` appends to it."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.cache import atomic_write_bytes
from bench.results.files import SCHEMA_VERSION, read_json, read_results, read_table, versioned_metadata
from bench.results.row import IDENTITY_COLUMNS, Row, cell_id


def _atomic_frame(df: pd.DataFrame, run_dir: Path, stem: str, csv: bool) -> None:
    """The table as `df.to_parquet(index=False)` writes it, with the run folder's schema version in the
    schema metadata (which pandas cannot add: `df.attrs` does not reach a reader's metadata check)."""
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(versioned_metadata(table.schema.metadata)), buffer)
    atomic_write_bytes(run_dir / f"{stem}.parquet", buffer.getvalue())
    if csv:
        atomic_write_bytes(run_dir / f"{stem}.csv", df.to_csv(index=False).encode())


class RunStore:
    """The run folder: results.{parquet,csv}, samples.parquet, per_image.parquet, gradcam.parquet,
    profile.parquet (--profile), per_backend.json, env.json, run.json, report.md, report.html, figures/."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._samples: list[pd.DataFrame] = []
        self._details: dict[str, Any] = {}
        self._per_image: list[pd.DataFrame] = []
        self._gradcam: list[pd.DataFrame] = []
        self._profile: list[pd.DataFrame] = []
        self._rounds: list[pd.DataFrame] = []
        self._load_existing()

    def _load_existing(self) -> None:
        """Pick up what an interrupted run already wrote, so `--resume` appends to it (a damaged file is a
        usage error naming it)."""
        if (self.run_dir / "results.parquet").exists():
            table = read_results(self.run_dir)
            self._rows = [
                {k: v for k, v in r.items() if not (isinstance(v, float) and pd.isna(v))}
                for r in table.to_dict("records")
            ]
        for stem, frames in self._tables():
            if (self.run_dir / f"{stem}.parquet").exists():
                frames[:] = [read_table(self.run_dir / f"{stem}.parquet")]
        if (self.run_dir / "per_backend.json").exists():
            self._details = read_json(self.run_dir / "per_backend.json")

    def finished_cells(self) -> set[str]:
        return {cell_id(r) for r in self._rows}

    def write_env(self, env: dict[str, Any]) -> None:
        """env.json, its `schema_version` first (this code's: a merged env keeps no input's)."""
        versioned = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in env.items() if k != "schema_version"}}
        atomic_write_bytes(self.run_dir / "env.json", json.dumps(versioned, indent=2, default=str).encode())

    def append(
        self,
        row: Row,
        samples_ns: np.ndarray | None = None,
        per_image_dice: np.ndarray | None = None,
        gradcam_records: list[dict[str, Any]] | None = None,
        sample_rounds: np.ndarray | None = None,
        profile_records: list[dict[str, Any]] | None = None,
        round_records: Sequence[dict[str, Any]] | None = None,
        per_image_counts: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Add one finished cell and rewrite every table atomically: a kill loses at most the next cell.
        `per_image_counts` ("class_tp", "class_fp", "class_fn": (images, classes) arrays) go beside each
        image's Dice, one list per image: what a later bootstrap of a dataset metric needs."""
        record = row.record()
        identity = {c: record[c] for c in IDENTITY_COLUMNS}
        self._rows.append(record)
        if round_records:
            self._rounds.append(pd.DataFrame([{**identity, **r} for r in round_records]))
            _atomic_frame(pd.concat(self._rounds, ignore_index=True), self.run_dir, "rounds", csv=False)
        if profile_records:
            self._profile.append(pd.DataFrame([{**identity, "threads": row.threads, **r} for r in profile_records]))
            _atomic_frame(pd.concat(self._profile, ignore_index=True), self.run_dir, "profile", csv=False)
        if gradcam_records:
            self._gradcam.append(pd.DataFrame([{**identity, **r} for r in gradcam_records]))
            _atomic_frame(pd.concat(self._gradcam, ignore_index=True), self.run_dir, "gradcam", csv=False)
        if per_image_dice is not None and len(per_image_dice):
            self._per_image.append(
                pd.DataFrame(
                    {
                        **identity,
                        "image_index": np.arange(len(per_image_dice), dtype=np.int64),
                        "dice": np.asarray(per_image_dice, np.float64),
                        **{
                            name: list(np.asarray(counts, np.int64))
                            for name, counts in (per_image_counts or {}).items()
                        },
                    }
                )
            )
            _atomic_frame(pd.concat(self._per_image, ignore_index=True), self.run_dir, "per_image", csv=False)
        if samples_ns is not None and len(samples_ns):
            self._samples.append(
                pd.DataFrame(
                    {
                        **identity,
                        "iteration": np.arange(len(samples_ns), dtype=np.int64),
                        "latency_ns": np.asarray(samples_ns, np.int64),
                        **({"round": np.asarray(sample_rounds, np.int64)} if sample_rounds is not None else {}),
                    }
                )
            )
        if row.details:
            self._details[cell_id(record)] = dict(row.details)
            atomic_write_bytes(
                self.run_dir / "per_backend.json", json.dumps(self._details, indent=2, default=str).encode()
            )
        _atomic_frame(self.table(), self.run_dir, "results", csv=True)
        if self._samples:
            _atomic_frame(pd.concat(self._samples, ignore_index=True), self.run_dir, "samples", csv=False)

    def absorb(self, folder: Path, columns: dict[str, Any]) -> list[dict[str, Any]]:
        """Append every row of another run folder (a Ray task's sub-run) with `columns` added to each row
        (which node measured it), its samples, per-image and Grad-CAM tables and details; rewrite atomically.
        Returns the rows added."""
        added = [
            {**{k: v for k, v in r.items() if not (isinstance(v, float) and pd.isna(v))}, **columns}
            for r in read_results(folder).to_dict("records")
        ]
        self._rows += added
        for stem, frames in self._tables():
            if (folder / f"{stem}.parquet").is_file():
                frames.append(read_table(folder / f"{stem}.parquet"))
        if (folder / "per_backend.json").is_file():
            self._details.update(read_json(folder / "per_backend.json"))
        self._rewrite()
        return added

    def forget(self, keys: set[str]) -> None:
        """Drop the cells `keys` (cell ids) from every table, so a resume can measure them again."""
        self._rows = [r for r in self._rows if cell_id(r) not in keys]
        for _, frames in self._tables():
            kept = [f[[cell_id(r) not in keys for r in f[list(IDENTITY_COLUMNS)].to_dict("records")]] for f in frames]
            frames[:] = [f for f in kept if len(f)]
        self._details = {k: v for k, v in self._details.items() if k not in keys}
        self._rewrite()

    def _tables(self) -> tuple[tuple[str, list[pd.DataFrame]], ...]:
        """The per-cell tables beside results: (file stem, frames)."""
        return (
            ("samples", self._samples),
            ("per_image", self._per_image),
            ("gradcam", self._gradcam),
            ("profile", self._profile),
            ("rounds", self._rounds),
        )

    def _rewrite(self) -> None:
        _atomic_frame(self.table(), self.run_dir, "results", csv=True)
        for stem, frames in self._tables():
            if frames:
                _atomic_frame(pd.concat(frames, ignore_index=True), self.run_dir, stem, csv=False)
            else:
                (self.run_dir / f"{stem}.parquet").unlink(missing_ok=True)
        atomic_write_bytes(self.run_dir / "per_backend.json", json.dumps(self._details, indent=2, default=str).encode())

    def table(self) -> pd.DataFrame:
        """The rows; with none, still the identity and status columns, so that reports can read it."""
        return pd.DataFrame(self._rows) if self._rows else pd.DataFrame(columns=[*IDENTITY_COLUMNS, "status"])

    def write_table(self) -> None:
        """results.{parquet,csv} as they stand, also with no row (an empty shard's folder reads like any run's)."""
        _atomic_frame(self.table(), self.run_dir, "results", csv=True)

    def rows(self) -> list[dict[str, Any]]:
        """The finished rows as records (this run's and, on resume, the earlier ones)."""
        return list(self._rows)


def update_latest(results_root: Path, run_dir: Path) -> None:
    """Point `results_root/latest` at `run_dir` (a relative symlink, replaced atomically)."""
    link = results_root / "latest"
    tmp = results_root / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(run_dir, results_root), tmp)
    os.replace(tmp, link)
