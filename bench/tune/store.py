"""The tune folder: sensitivity.parquet, tuning.parquet, calibration.parquet, peer.parquet (each rewritten atomically
after every finished layer, step or draw, so a killed tune keeps what it finished and `--resume` goes on
from there), tune.json, env.json, report.md, report.html, figures/."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench.cache import atomic_write_bytes
from bench.results.files import read_table

TABLES = ("sensitivity", "tuning", "calibration", "peer")


class TuneStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
        for name in TABLES:
            path = folder / f"{name}.parquet"
            if path.exists():
                self._rows[name] = read_table(path).to_dict("records")

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self._rows[table])

    def find(self, table: str, **key: Any) -> dict[str, Any] | None:
        """The stored row whose columns equal `key` (what a resumed tune does not measure again)."""
        return next((r for r in self._rows[table] if all(r.get(k) == v for k, v in key.items())), None)

    def append(self, table: str, row: dict[str, Any]) -> None:
        self._rows[table].append(row)
        buffer = io.BytesIO()
        pd.DataFrame(self._rows[table]).to_parquet(buffer, index=False)
        atomic_write_bytes(self.folder / f"{table}.parquet", buffer.getvalue())

    def errors(self) -> list[str]:
        """One line per stored variant that ended in `error:` (which table, which variant, the status)."""
        found = []
        for table in TABLES:
            for row in self._rows[table]:
                status = str(row.get("status", ""))
                if status.startswith("error"):
                    found.append(f"{table} {_variant(table, row)}: {status}")
        return found

    def frame(self, table: str) -> pd.DataFrame:
        return pd.DataFrame(self._rows[table])

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        atomic_write_bytes(self.folder / name, json.dumps(data, indent=2, default=str).encode())


def _variant(table: str, row: dict[str, Any]) -> str:
    """Which variant a row of `table` is, as the progress lines name it."""
    if table == "sensitivity":
        return f"layer {row.get('layer')}"
    if table == "calibration":
        return f"{row.get('method')}, {row.get('size')} images, seed {row.get('seed')}"
    if table == "tuning":
        return f"{row.get('split')} step {row.get('step')} ({row.get('n_float_layers')} layer(s) in float)"
    return f"{row.get('split')} ({row.get('method') or 'accuracy control'})"
