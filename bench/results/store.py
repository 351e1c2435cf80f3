"""The run folder: every table rewritten atomically after each finished cell, so a run that dies
keeps everything it finished and `--resume` appends to it."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cache import atomic_write_bytes
from bench.results.row import IDENTITY_COLUMNS, Row, cell_id


def _atomic_frame(df: pd.DataFrame, run_dir: Path, stem: str, csv: bool) -> None:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    atomic_write_bytes(run_dir / f"{stem}.parquet", buffer.getvalue())
    if csv:
        atomic_write_bytes(run_dir / f"{stem}.csv", df.to_csv(index=False).encode())


class RunStore:
    """The run folder: results.{parquet,csv}, samples.parquet, per_image.parquet, gradcam.parquet,
    per_backend.json, env.json, run.json, report.md, report.html, figures/."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._samples: list[pd.DataFrame] = []
        self._details: dict[str, Any] = {}
        self._per_image: list[pd.DataFrame] = []
        self._gradcam: list[pd.DataFrame] = []
        self._load_existing()

    def _load_existing(self) -> None:
        """Pick up what an interrupted run already wrote, so `--resume` appends to it."""
        if (self.run_dir / "results.parquet").exists():
            table = pd.read_parquet(self.run_dir / "results.parquet")
            self._rows = [
                {k: v for k, v in r.items() if not (isinstance(v, float) and pd.isna(v))}
                for r in table.to_dict("records")
            ]
        if (self.run_dir / "samples.parquet").exists():
            self._samples = [pd.read_parquet(self.run_dir / "samples.parquet")]
        if (self.run_dir / "per_image.parquet").exists():
            self._per_image = [pd.read_parquet(self.run_dir / "per_image.parquet")]
        if (self.run_dir / "gradcam.parquet").exists():
            self._gradcam = [pd.read_parquet(self.run_dir / "gradcam.parquet")]
        if (self.run_dir / "per_backend.json").exists():
            self._details = json.loads((self.run_dir / "per_backend.json").read_text())

    def finished_cells(self) -> set[str]:
        return {cell_id(r) for r in self._rows}

    def write_env(self, env: dict[str, Any]) -> None:
        atomic_write_bytes(self.run_dir / "env.json", json.dumps(env, indent=2, default=str).encode())

    def append(
        self,
        row: Row,
        samples_ns: np.ndarray | None = None,
        per_image_dice: np.ndarray | None = None,
        gradcam_records: list[dict[str, Any]] | None = None,
        sample_rounds: np.ndarray | None = None,
    ) -> None:
        """Add one finished cell and rewrite every table atomically: a kill loses at most the next cell."""
        record = row.record()
        identity = {c: record[c] for c in IDENTITY_COLUMNS}
        self._rows.append(record)
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

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows)

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
