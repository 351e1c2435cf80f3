"""Result records and the run folder they land in.

One `Row` per suite x model x backend x precision x device x batch size. Every number names its unit,
and where methods differ a sibling column names the method (`timer`, `memory_method`). Each finished
cell is written at once (atomically), so a run that dies keeps everything it finished.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cache import atomic_write_bytes

IDENTITY_COLUMNS = ("suite", "model", "backend", "precision", "device", "batch_size")


@dataclass(frozen=True)
class Row:
    suite: str
    model: str
    backend: str
    precision: str
    device: str
    status: str  # "ok", "unavailable: <reason>" or "error: <message>"
    batch_size: int = 1
    threads: int | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_stdev_ms: float | None = None
    latency_min_ms: float | None = None
    latency_cv: float | None = None
    latency_iterations: int | None = None
    throughput_ips: float | None = None
    timer: str | None = None
    peak_rss_mib: float | None = None
    memory_method: str | None = None
    peak_device_mib: float | None = None
    device_memory_method: str | None = None
    model_size_bytes: int | None = None
    int8_ops: int | None = None
    float_ops: int | None = None
    float_op_types: str | None = None
    dice: float | None = None
    miou: float | None = None
    global_accuracy: float | None = None
    mean_accuracy: float | None = None
    weighted_iou: float | None = None
    mean_bf_score: float | None = None  # boundary F1, tolerance 0.75% of the image diagonal
    dice_drift: float | None = None
    miou_drift: float | None = None
    global_accuracy_drift: float | None = None
    mean_accuracy_drift: float | None = None
    weighted_iou_drift: float | None = None
    mean_bf_score_drift: float | None = None
    pixel_agreement: float | None = None
    miou_vs_reference: float | None = None  # mIoU of this backend's labels against the fp32 labels
    sqnr_db: float | None = None  # logits vs the fp32 reference logits
    gradcam_pearson: float | None = None
    gradcam_spearman: float | None = None
    gradcam_top10_iou: float | None = None
    gradcam_jsd: float | None = None
    gradcam_method: str | None = None  # autograd | finite-difference | fake-quant
    gradcam_zero_maps: int | None = None  # (image, class) pairs left out because a map was all zero
    gradcam_layer: str | None = None
    gradcam_images: int | None = None
    gradcam_s_per_image: float | None = None
    gradcam_note: str | None = None
    prepare_s: float | None = None
    artifact_cached: bool | None = None
    artifact_key: str | None = None
    duration_s: float | None = None
    notes: str = ""
    options: str = ""
    per_class: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # further columns (e.g. Grad-CAM of extra layers)
    details: dict[str, Any] = field(default_factory=dict)  # goes to per_backend.json, not the table

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict[str, Any]:
        """Flat dict for a table row; per-class scores become `iou_<class>` / `dice_<class>` columns."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("per_class", "extra", "details")}
        out.update(self.per_class)
        out.update(self.extra)
        return out


def cell_id(row: Row | dict[str, Any]) -> str:
    data = asdict(row) if isinstance(row, Row) else row
    return "/".join(str(data[c]) for c in IDENTITY_COLUMNS)


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
            table = pd.read_parquet(self.run_dir / "results.parquet").drop(columns=["speedup_vs_fp32"], errors="ignore")
            self._rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and pd.isna(v))}
                          for r in table.to_dict("records")]
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

    def append(self, row: Row, samples_ns: np.ndarray | None = None, per_image_dice: np.ndarray | None = None,
               gradcam_records: list[dict[str, Any]] | None = None) -> None:
        """Add one finished cell and rewrite every table atomically: a kill loses at most the next cell."""
        self._rows.append(row.record())
        if gradcam_records:
            self._gradcam.append(pd.DataFrame([{**{c: getattr(row, c) for c in IDENTITY_COLUMNS}, **r} for r in gradcam_records]))
            _atomic_frame(pd.concat(self._gradcam, ignore_index=True), self.run_dir, "gradcam", csv=False)
        if per_image_dice is not None and len(per_image_dice):
            self._per_image.append(pd.DataFrame({
                **{c: getattr(row, c) for c in IDENTITY_COLUMNS},
                "image_index": np.arange(len(per_image_dice), dtype=np.int64),
                "dice": np.asarray(per_image_dice, np.float64),
            }))
            _atomic_frame(pd.concat(self._per_image, ignore_index=True), self.run_dir, "per_image", csv=False)
        if samples_ns is not None and len(samples_ns):
            self._samples.append(pd.DataFrame({
                **{c: getattr(row, c) for c in IDENTITY_COLUMNS},
                "iteration": np.arange(len(samples_ns), dtype=np.int64),
                "latency_ns": np.asarray(samples_ns, np.int64),
            }))
        if row.details:
            self._details[cell_id(row)] = row.details
            atomic_write_bytes(self.run_dir / "per_backend.json", json.dumps(self._details, indent=2, default=str).encode())
        _atomic_frame(self.table(), self.run_dir, "results", csv=True)
        if self._samples:
            _atomic_frame(pd.concat(self._samples, ignore_index=True), self.run_dir, "samples", csv=False)

    def table(self) -> pd.DataFrame:
        return add_speedup(pd.DataFrame(self._rows))


def add_speedup(df: pd.DataFrame, reference_backend: str = "torch-eager", reference_precision: str = "fp32") -> pd.DataFrame:
    """`speedup_vs_fp32`: p50 of the fp32 reference in the same run divided by this row's p50.

    Speeds are compared as ratios measured in the same run, because absolute times on shared
    machines drift between runs.
    """
    if df.empty or "latency_p50_ms" not in df:
        return df
    df = df.copy()
    keys = ["suite", "model", "device", "batch_size"]
    ref = df[(df.backend == reference_backend) & (df.precision == reference_precision) & (df.status == "ok")]
    ref = ref[keys + ["latency_p50_ms"]].rename(columns={"latency_p50_ms": "_ref_p50"})
    merged = df.merge(ref, on=keys, how="left")
    df["speedup_vs_fp32"] = (merged["_ref_p50"] / merged["latency_p50_ms"]).to_numpy()
    return df


def update_latest(results_root: Path, run_dir: Path) -> None:
    """Point `results_root/latest` at `run_dir` (a relative symlink, replaced atomically)."""
    link = results_root / "latest"
    tmp = results_root / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(run_dir, results_root), tmp)
    os.replace(tmp, link)
