"""Where each profiled cell's time goes (`segbench run --profile`), as tables: read from the run folder's
profile.parquet (one row per operator of a cell's profiled pass, `bench.measure.profile`) and results.parquet.
pandas only, no words: bench/report/profile_text.py says it, bench/report/profile_report.py lays it out in
report.md and report.html, bench/report/profile_chart.py draws it.

Every time here is in **milliseconds per model call** (profile.parquet's `us_per_run` / 1000: what the
profiled pass spent over all its calls, divided by the calls), so cells of one (suite, model, device,
batch size) compare directly. The profiler runs after the timing, with its own cost: these times say
*where* the time goes, the row's `latency_p50_ms` says how long a call takes
(`profile_overhead_pct`, `profile_ops_vs_p50_pct` state the gap for each cell).

The items a cell's time is split into, which sum to its profiled operators' time:

- a layer (module path): its **compute** ops only;
- one bucket per overhead category (quantize, dequantize, requantize, reorder;
  `bench.backend.profiling.OVERHEAD_CATEGORIES`): every op of that category, whatever its layer, so the
  cost of entering, leaving and shuffling the int8 domain is counted once and apart from the layers;
- unattributed: compute ops whose layer the runtime could not tell ("").

An int8 cell is compared with its **float counterpart** (bench.results.counterparts).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from bench.backend.profiling import OVERHEAD_CATEGORIES
from bench.measure.profile import PROFILE_COLUMNS
from bench.results.counterparts import float_counterpart
from bench.results.files import read_table
from bench.results.row import IDENTITY_COLUMNS
from bench.results.speedup import GROUP_COLUMNS

PROFILE_FILE = "profile.parquet"

TOP_LAYERS = 10  # rows of a cell's layer table
CONTRIBUTORS = 3  # items named in a not-faster line or a decision's time sinks
UNATTRIBUTED = "unattributed"
BUCKETS = (*OVERHEAD_CATEGORIES, UNATTRIBUTED)  # the rows of the attribution table after its layers


class Cell(NamedTuple):
    """A cell's identity (`IDENTITY_COLUMNS`)."""

    suite: str
    model: str
    backend: str
    precision: str
    device: str
    batch_size: int
    input_size: str = ""  # "HxW" in a shape sweep at another size than the suite's

    @property
    def group(self) -> tuple[str, str, str, int, str]:
        """(suite, model, device, batch_size, input_size): the cells that are compared (`GROUP_COLUMNS`)."""
        return self.suite, self.model, self.device, self.batch_size, self.input_size

    @property
    def label(self) -> str:
        """`backend:precision`, unique within a group (the column of the attribution table)."""
        return f"{self.backend}:{self.precision}"

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Cell:
        suite, model, backend, precision, device, batch = (row[c] for c in IDENTITY_COLUMNS[:-1])
        size = row.get("input_size")
        return cls(str(suite), str(model), str(backend), str(precision), str(device), int(batch), str(size or ""))


# ---------------------------------------------------------------------------------------------------
# reading


def read_profile(run_dir: Path) -> pd.DataFrame | None:
    """profile.parquet with `ms_per_run` added (`layer` and `op_precision` "" where missing), or None
    when the run was not profiled (no file). A run whose every profile failed has a table without rows."""
    path = run_dir / PROFILE_FILE
    if not path.is_file():
        return None
    profile = read_table(path)
    if profile.empty:  # written from no records: perhaps not even the columns
        profile = pd.DataFrame({c: pd.Series(dtype=object) for c in (*IDENTITY_COLUMNS, *PROFILE_COLUMNS)})
    profile = profile.assign(
        layer=profile["layer"].fillna("").astype(str),
        op_precision=profile["op_precision"].fillna("").astype(str),
        op_type=profile["op_type"].fillna("").astype(str),
        ms_per_run=profile["us_per_run"].astype(float) / 1e3,
    )
    return profile


def cell_profiles(profile: pd.DataFrame) -> dict[Cell, pd.DataFrame]:
    """Each profiled cell's operator rows, in the order of profile.parquet."""
    return {
        Cell.of(dict(zip(IDENTITY_COLUMNS, key))): ops
        for key, ops in profile.groupby(list(IDENTITY_COLUMNS), sort=False)
    }


def result_rows(results: pd.DataFrame) -> dict[Cell, dict[str, Any]]:
    """results.parquet's rows by cell."""
    return {Cell.of(row): row for row in results.to_dict("records")}


def numeric(row: Mapping[str, Any] | None, column: str) -> float | None:
    """A row's number, None where the row or the value is missing."""
    value = None if row is None else row.get(column)
    return None if value is None or pd.isna(value) else float(value)


# ---------------------------------------------------------------------------------------------------
# float counterparts


def counterparts(results: pd.DataFrame) -> dict[Cell, Cell | None]:
    """Every int8 cell of the run (any status) and its float counterpart among the cells that ran."""
    ran: dict[tuple[str, str, str, int, str], set[tuple[str, str]]] = {}
    cells = list(result_rows(results).items())
    for cell, row in cells:
        if row.get("status") == "ok":
            ran.setdefault(cell.group, set()).add((cell.backend, cell.precision))
    out: dict[Cell, Cell | None] = {}
    for cell, _ in cells:
        if cell.precision != "int8":
            continue
        found = float_counterpart(cell.backend, cell.precision, ran.get(cell.group, set()))
        out[cell] = None if found is None else cell._replace(backend=found[0], precision=found[1])
    return out


# ---------------------------------------------------------------------------------------------------
# one cell's items


def _joined(ops: pd.DataFrame, column: str, sep: str) -> str:
    """The distinct non-empty values of `column`, the most time first."""
    by_time = ops.groupby(column, sort=False)["ms_per_run"].sum().sort_values(ascending=False, kind="stable")
    return sep.join(str(v) for v in by_time.index if v)


def cell_items(ops: pd.DataFrame, unattributed_by_op_type: bool = False) -> pd.DataFrame:
    """One cell's time split into items that sum to its profiled ops (see the module doc): columns
    kind (`layer`, a category of OVERHEAD_CATEGORIES or `unattributed`), item (the layer, the category,
    or for unattributed ops `unattributed` or, with `unattributed_by_op_type`, the op type), ms_per_run,
    op_types and precisions (each "+"/"/"-joined, the most time first); largest first. An overhead
    bucket the cell has no op of is left out."""
    compute = ops[ops["category"] == "compute"]
    rows: list[dict[str, Any]] = []

    def add(kind: str, item: str, part: pd.DataFrame) -> None:
        rows.append(
            {
                "kind": kind,
                "item": item,
                "ms_per_run": float(part["ms_per_run"].sum()),
                "op_types": _joined(part, "op_type", "+"),
                "precisions": _joined(part, "op_precision", "/"),
            }
        )

    for layer, part in compute[compute["layer"] != ""].groupby("layer", sort=False):
        add("layer", str(layer), part)
    for category in OVERHEAD_CATEGORIES:
        part = ops[ops["category"] == category]
        if len(part):
            add(category, category, part)
    unattributed = compute[compute["layer"] == ""]
    if unattributed_by_op_type:
        for op_type, part in unattributed.groupby("op_type", sort=False):
            add(UNATTRIBUTED, str(op_type), part)
    elif len(unattributed):
        add(UNATTRIBUTED, UNATTRIBUTED, unattributed)
    items = pd.DataFrame(rows, columns=["kind", "item", "ms_per_run", "op_types", "precisions"])
    return items.sort_values(["ms_per_run", "item"], ascending=[False, True], kind="stable").reset_index(drop=True)


def top_layers(ops: pd.DataFrame, n: int = TOP_LAYERS) -> pd.DataFrame:
    """A cell's `n` slowest layers (compute ops): layer, ms_per_run, share_pct (of the cell's profiled
    ops), precisions, op_types."""
    total = float(ops["ms_per_run"].sum())
    items = cell_items(ops)
    layers = items[items["kind"] == "layer"].head(n)
    return pd.DataFrame(
        {
            "layer": layers["item"],
            "ms_per_run": layers["ms_per_run"],
            "share_pct": layers["ms_per_run"] / total * 100 if total else float("nan"),
            "precisions": layers["precisions"],
            "op_types": layers["op_types"],
        }
    ).reset_index(drop=True)


def contributors(ops: pd.DataFrame, n: int = CONTRIBUTORS) -> pd.DataFrame:
    """The `n` largest items of a cell: each layer, each overhead category's total, and unattributed
    compute by op type (`cell_items` columns)."""
    return cell_items(ops, unattributed_by_op_type=True).head(n)


# ---------------------------------------------------------------------------------------------------
# across the cells of a group


def ordered_cells(cells: list[Cell], pairs: Mapping[Cell, Cell | None]) -> list[Cell]:
    """Float cells in their order, each followed by the int8 cells compared with it; the rest after."""
    floats = [c for c in cells if pairs.get(c) is None and c.precision != "int8"]
    out: list[Cell] = []
    for cell in floats:
        out += [cell, *(c for c in cells if pairs.get(c) == cell)]
    return out + [c for c in cells if c not in out]


def attribution_tables(
    profile: pd.DataFrame, results: pd.DataFrame | None = None
) -> dict[tuple[str, str, str, int, str], pd.DataFrame]:
    """Per (suite, model, device, batch_size): ms per run, rows (kind, item) x one column per profiled
    cell (`backend:precision`). The layer rows (kind `layer`, compute ops only, the slowest on any cell
    first; NaN where a cell has no op of that layer) come first, then one row per overhead category
    (kind = item = the category: all its ops, whatever their layer) and `unattributed` (compute ops
    without a layer); those are 0.0 where a profiled cell has none. Each column sums to the cell's
    profiled ops. With `results`, each float cell is followed by the int8 cells compared with it."""
    pairs = counterparts(results) if results is not None else {}
    groups: dict[tuple[str, str, str, int, str], list[tuple[Cell, pd.DataFrame]]] = {}
    for cell, ops in cell_profiles(profile).items():
        groups.setdefault(cell.group, []).append((cell, cell_items(ops)))
    tables = {}
    for group, entries in groups.items():
        items = dict(entries)
        columns = {}
        for cell in ordered_cells(list(items), pairs):
            found = items[cell]
            values = {(k, i): ms for k, i, ms in zip(found["kind"], found["item"], found["ms_per_run"])}
            columns[cell.label] = {**{(b, b): 0.0 for b in BUCKETS}, **values}
        table = pd.DataFrame(columns)
        layer_keys = [key for key in table.index if key[0] == "layer"]
        layer_keys.sort(key=lambda key: (-table.loc[key].max(skipna=True), key[1]))
        table = table.loc[[*layer_keys, *((b, b) for b in BUCKETS)]]
        table.index.names = ["kind", "item"]
        tables[group] = table
    return tables


def overhead_buckets(profile: pd.DataFrame) -> pd.DataFrame:
    """Per profiled cell (its identity columns): ms per run in each overhead category (all ops of the
    category, whatever their layer), `overhead` (their sum), `unattributed` (compute ops without a
    layer), `layers` (compute ops with one) and `ops` (everything profiled: layers + overhead +
    unattributed)."""
    rows = []
    for cell, ops in cell_profiles(profile).items():
        by_category = ops.groupby("category")["ms_per_run"].sum()
        compute = ops[ops["category"] == "compute"]
        row: dict[str, Any] = dict(zip(IDENTITY_COLUMNS, cell))
        row.update({c: float(by_category.get(c, 0.0)) for c in OVERHEAD_CATEGORIES})
        row["overhead"] = sum(row[c] for c in OVERHEAD_CATEGORIES)
        row["unattributed"] = float(compute.loc[compute["layer"] == "", "ms_per_run"].sum())
        row["layers"] = float(compute.loc[compute["layer"] != "", "ms_per_run"].sum())
        row["ops"] = float(ops["ms_per_run"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


NOT_FASTER_COLUMNS = [
    "suite",
    "model",
    "device",
    "batch_size",
    "input_size",
    "layer",
    "int8",
    "float",
    "int8_ms",
    "float_ms",
    "ratio",
    "op_types",
    "precisions",
]


def not_faster_layers(profile: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Layers whose time (compute ops, ms per run) in an int8 cell is not lower than in its float
    counterpart's profile: group columns, layer, int8 and float (`backend:precision`), int8_ms, float_ms,
    ratio (int8 / float), the int8 side's op_types and precisions. Only layers both profiles name are
    compared; an int8 cell without a profiled counterpart has no rows. Groups and int8 cells in the order
    of results.parquet; within a cell, the largest excess (int8_ms - float_ms) first."""
    profiles = cell_profiles(profile)
    rows = []
    for cell, counterpart in counterparts(results).items():
        if counterpart is None or cell not in profiles or counterpart not in profiles:
            continue
        mine = cell_items(profiles[cell])
        theirs = cell_items(profiles[counterpart])
        both = mine[mine["kind"] == "layer"].merge(
            theirs[theirs["kind"] == "layer"][["item", "ms_per_run"]], on="item", suffixes=("", "_float")
        )
        slower = both[both["ms_per_run"] >= both["ms_per_run_float"]]
        slower = slower.assign(excess=slower["ms_per_run"] - slower["ms_per_run_float"])
        for r in slower.sort_values(["excess", "item"], ascending=[False, True], kind="stable").itertuples():
            float_ms = float(r.ms_per_run_float)
            rows.append(
                {
                    **dict(zip(GROUP_COLUMNS, cell.group)),
                    "layer": r.item,
                    "int8": cell.label,
                    "float": counterpart.label,
                    "int8_ms": float(r.ms_per_run),
                    "float_ms": float_ms,
                    "ratio": float(r.ms_per_run) / float_ms if float_ms > 0 else float("inf"),
                    "op_types": r.op_types,
                    "precisions": r.precisions,
                }
            )
    table = pd.DataFrame(rows, columns=NOT_FASTER_COLUMNS)
    if table.empty:
        return table
    groups = [tuple(r) for r in table[list(GROUP_COLUMNS)].itertuples(index=False)]
    order = {group: i for i, group in enumerate(dict.fromkeys(groups))}
    rank = pd.Series([order[g] for g in groups], index=table.index)
    return table.loc[rank.sort_values(kind="stable").index].reset_index(drop=True)
