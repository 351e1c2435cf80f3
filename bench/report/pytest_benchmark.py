"""A run folder as pytest-benchmark's JSON, the format many CI dashboards read (github-action-benchmark,
Bencher, `pytest-benchmark compare`).

One benchmark per timed cell: its raw samples (seconds per call, every counted iteration of
samples.parquet) are the data, and pytest-benchmark's own `Stats` computes the statistics from them, so
they are exactly what pytest-benchmark would report for those samples. `machine_info` and `commit_info`
come from the run's env.json; the row's quality, drift, size and timing-trust columns go to
`extra_info`. A cell without samples (an error or unavailable row) has no benchmark; the caller is told
which were left out and why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UsageError
from bench.results.files import read_json, read_results, read_table

FORMATS = ("pytest-benchmark",)
CELL_KEYS = ("suite", "model", "backend", "precision", "device", "batch_size", "input_size")
# Row columns that describe the timing itself (already in `stats`) and are not repeated in extra_info.
_TIMING_COLUMNS = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_stdev_ms")


def _plain(value: Any) -> Any:
    """A JSON value, or None for what has no valid number (NaN never reaches a dashboard)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def machine_info(env: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine_info keys, filled from segbench's fingerprint (plus what it adds)."""
    system = str(env.get("os", ""))
    return {
        "node": env.get("hostname"),
        "processor": env.get("cpu_model"),
        "machine": "x86_64" if "x86_64" in system else ("aarch64" if "aarch64" in system else None),
        "python_implementation": "CPython",
        "python_version": env.get("python"),
        "release": system,
        "system": system.split("-", 1)[0] if system else None,
        "cpu": {
            "brand_raw": env.get("cpu_model"),
            "count": env.get("logical_cores"),
            "physical_cores": env.get("physical_cores"),
            "flags": env.get("cpu_flags", []),
        },
        "threads": env.get("threads"),
        "gpu": env.get("gpu"),
        "libraries": env.get("libraries", {}),
    }


def commit_info(env: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": env.get("git_commit"),
        "time": env.get("date"),
        "author_time": env.get("date"),
        "dirty": bool(env.get("git_dirty", False)),
        "project": "segbench",
        "branch": env.get("git_branch"),
    }


def cell_name(row: pd.Series) -> str:
    size = row.get("input_size") or ""
    return (
        f"{row['suite']}/{row['model']}/{row['backend']}-{row['precision']}/{row['device']}/b{int(row['batch_size'])}"
        + (f"/{size}" if size else "")
    )


def export_pytest_benchmark(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The run as a pytest-benchmark JSON document, and the cells left out (no timing: why)."""
    try:
        import pytest_benchmark
        from pytest_benchmark.stats import Stats
    except ImportError:
        raise UsageError("pytest-benchmark is not installed (pip install 'segbench[export]')") from None
    for name in ("results.parquet", "samples.parquet", "env.json"):
        if not (run_dir / name).is_file():
            raise UsageError(f"'{run_dir}' has no {name}; expected a segbench run folder")
    results = read_results(run_dir)
    samples = read_table(run_dir / "samples.parquet", ("latency_ns",))
    env = read_json(run_dir / "env.json")
    groups = {key: rows["latency_ns"].to_numpy() for key, rows in samples.groupby(list(CELL_KEYS), sort=False)}
    benchmarks, left_out = [], []
    for _, row in results.iterrows():
        key = tuple(row[k] for k in CELL_KEYS)
        data = groups.get(key)
        if data is None or not len(data):
            left_out.append(f"{cell_name(row)}: {row.get('status')}")
            continue
        seconds = [float(ns) / 1e9 for ns in data]
        stats = Stats()
        for value in seconds:
            stats.update(value)
        extra = {
            str(k): _plain(v)
            for k, v in row.items()
            if k not in _TIMING_COLUMNS and k not in CELL_KEYS and _plain(v) is not None
        }
        benchmarks.append(
            {
                "group": f"{row['suite']}/{row['model']}",
                "name": cell_name(row),
                "fullname": f"segbench::{cell_name(row)}",
                "params": {k: _plain(row[k]) for k in CELL_KEYS},
                "param": f"{row['backend']}-{row['precision']}",
                "extra_info": extra,
                "options": {
                    "disable_gc": False,
                    "timer": str(row.get("timer", "perf_counter_ns")),
                    "min_rounds": int(len(seconds)),
                    "max_time": None,
                    "min_time": None,
                    "warmup": True,
                },
                "stats": {**{k: _plain(v) for k, v in stats.as_dict().items()}, "data": seconds, "iterations": 1},
            }
        )
    document = {
        "machine_info": machine_info(env),
        "commit_info": commit_info(env),
        "benchmarks": benchmarks,
        "datetime": env.get("date"),
        "version": pytest_benchmark.__version__,
    }
    return document, left_out
