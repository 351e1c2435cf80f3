"""Where each profiled cell's time goes (`segbench run --profile`), read from the run folder's
profile.parquet (one row per operator of a cell's profiled pass, `bench.measure.profile`) and
results.parquet, for report.md and report.html.

Over 400 lines on purpose for now: the profiles' analysis, Markdown, HTML and charts; issue 32 (item 4:
analysis apart from its rendering, each section's wording in one place) splits it.

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

import html
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.backend.profiling import OVERHEAD_CATEGORIES
from bench.measure.profile import PROFILE_COLUMNS
from bench.report.charts import png_file_uri
from bench.report.figures import figure_name, save_figure
from bench.results.counterparts import float_counterpart
from bench.results.files import read_table
from bench.results.row import IDENTITY_COLUMNS
from bench.results.speedup import GROUP_COLUMNS

PROFILE_FILE = "profile.parquet"

TOP_OP_TYPES = 8  # segments of a cell's op-type bar; the rest is "other"
TOP_LAYERS = 10  # rows of a cell's layer table
CONTRIBUTORS = 3  # items named in a not-faster line
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

    @property
    def group(self) -> tuple[str, str, str, int]:
        """(suite, model, device, batch_size): the cells that are compared (`GROUP_COLUMNS`)."""
        return self.suite, self.model, self.device, self.batch_size

    @property
    def label(self) -> str:
        """`backend:precision`, unique within a group (the column of the attribution table)."""
        return f"{self.backend}:{self.precision}"

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Cell:
        suite, model, backend, precision, device, batch = (row[c] for c in IDENTITY_COLUMNS)
        return cls(str(suite), str(model), str(backend), str(precision), str(device), int(batch))


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


def _result_rows(results: pd.DataFrame) -> dict[Cell, dict[str, Any]]:
    return {Cell.of(row): row for row in results.to_dict("records")}


def _value(row: Mapping[str, Any] | None, column: str) -> float | None:
    value = None if row is None else row.get(column)
    return None if value is None or pd.isna(value) else float(value)


# ---------------------------------------------------------------------------------------------------
# float counterparts


def counterparts(results: pd.DataFrame) -> dict[Cell, Cell | None]:
    """Every int8 cell of the run (any status) and its float counterpart among the cells that ran."""
    ran: dict[tuple[str, str, str, int], set[tuple[str, str]]] = {}
    cells = list(_result_rows(results).items())
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


def _ordered(cells: list[Cell], pairs: Mapping[Cell, Cell | None]) -> list[Cell]:
    """Float cells in their order, each followed by the int8 cells compared with it; the rest after."""
    floats = [c for c in cells if pairs.get(c) is None and c.precision != "int8"]
    out: list[Cell] = []
    for cell in floats:
        out += [cell, *(c for c in cells if pairs.get(c) == cell)]
    return out + [c for c in cells if c not in out]


def attribution_tables(
    profile: pd.DataFrame, results: pd.DataFrame | None = None
) -> dict[tuple[str, str, str, int], pd.DataFrame]:
    """Per (suite, model, device, batch_size): ms per run, rows (kind, item) x one column per profiled
    cell (`backend:precision`). The layer rows (kind `layer`, compute ops only, the slowest on any cell
    first; NaN where a cell has no op of that layer) come first, then one row per overhead category
    (kind = item = the category: all its ops, whatever their layer) and `unattributed` (compute ops
    without a layer); those are 0.0 where a profiled cell has none. Each column sums to the cell's
    profiled ops. With `results`, each float cell is followed by the int8 cells compared with it."""
    pairs = counterparts(results) if results is not None else {}
    groups: dict[tuple[str, str, str, int], list[tuple[Cell, pd.DataFrame]]] = {}
    for cell, ops in cell_profiles(profile).items():
        groups.setdefault(cell.group, []).append((cell, cell_items(ops)))
    tables = {}
    for group, entries in groups.items():
        items = dict(entries)
        columns = {}
        for cell in _ordered(list(items), pairs):
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


# ---------------------------------------------------------------------------------------------------
# report.md


def ms_text(value: float) -> str:
    """Short milliseconds: one decimal from 1 ms, two significant digits below."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2g}"


def describe_item(item: Mapping[str, Any]) -> str:
    """What a contributor is, in words."""
    kind, name = item["kind"], item["item"]
    if kind == "layer":
        detail = ", ".join(str(v) for v in (item["op_types"], item["precisions"]) if v)
        return f"layer {name}" + (f" ({detail})" if detail else "")
    if kind == UNATTRIBUTED:
        return f"unattributed {name} ops" + (f" ({item['precisions']})" if item["precisions"] else "")
    return f"{kind} ops"


def _multi(results: pd.DataFrame) -> bool:
    """Whether lines must name the device and batch size (the run has more than one of either)."""
    return any(c in results and results[c].nunique() > 1 for c in ("device", "batch_size"))


def cell_name(cell: Cell, with_setting: bool = False) -> str:
    """`suite / model / backend precision`, plus `(device, batch N)` when asked."""
    name = f"{cell.suite} / {cell.model} / {cell.backend} {cell.precision}"
    return name + (f" ({cell.device}, batch {cell.batch_size})" if with_setting else "")


def not_faster_lines(profile: pd.DataFrame | None, results: pd.DataFrame) -> list[str]:
    """One line per int8 cell whose p50 is not lower than its float counterpart's, naming its
    `CONTRIBUTORS` largest items (`contributors`) with their ms per run and the counterpart's time for
    the same item ("—": the counterpart has no op in it); then one line per int8 cell that ran without
    a float counterpart in the run. Without the leading "- "."""
    rows = _result_rows(results)
    profiles = cell_profiles(profile) if profile is not None else {}
    setting = _multi(results)
    lines, alone = [], []
    for cell, counterpart in counterparts(results).items():
        row = rows[cell]
        if row.get("status") != "ok":
            continue
        if counterpart is None:
            alone.append(f"{cell_name(cell, setting)}: no float counterpart ran in this group, nothing to compare")
            continue
        p50, float_p50 = _value(row, "latency_p50_ms"), _value(rows[counterpart], "latency_p50_ms")
        if p50 is None or float_p50 is None or p50 < float_p50:
            continue
        head = (
            f"{cell_name(cell, setting)} {ms_text(p50)} ms is not faster than "
            f"{counterpart.backend} {counterpart.precision} {ms_text(float_p50)} ms"
        )
        if cell not in profiles:
            lines.append(f"{head}: no profile ({row.get('profile_status') or 'not profiled'})")
            continue
        theirs = None
        if counterpart in profiles:
            items = cell_items(profiles[counterpart], unattributed_by_op_type=True)
            theirs = {(k, i): ms for k, i, ms in zip(items["kind"], items["item"], items["ms_per_run"])}
        named = []
        for item in contributors(profiles[cell]).to_dict("records"):
            text = f"{describe_item(item)} {ms_text(item['ms_per_run'])} ms/run"
            if theirs is not None:
                other = theirs.get((item["kind"], item["item"]))
                text += f" ({counterpart.precision}: {'—' if other is None else ms_text(other)})"
            named.append(text)
        tail = "" if theirs is not None else f" ({counterpart.backend} {counterpart.precision} has no profile)"
        lines.append(f"{head}: largest contributors {', '.join(named)}{tail}")
    return lines + alone


def markdown_section(run_dir: Path, results: pd.DataFrame) -> list[str]:
    """report.md's "Profiles" lines; none for a run without profile.parquet."""
    profile = read_profile(run_dir)
    if profile is None:
        return []
    cells = len(cell_profiles(profile))
    lines = not_faster_lines(profile, results)
    return [
        "## Profiles",
        "",
        f"Per-operator profiles of {cells} cell(s) (`segbench run --profile`): `{PROFILE_FILE}` in this run folder, "
        "one row per operator; report.html shows each cell's op types and layers.",
        "Times are the profiled pass's ms per model call (profiler on); p50s are the unprofiled timing. "
        "A layer's time is its compute ops; quantize, dequantize, requantize and reorder ops count in their "
        "category, whatever their layer.",
        "",
        *(
            ["int8 cells not faster than their float counterpart:", "", *(f"- {line}" for line in lines)]
            if lines
            else ["Every int8 cell that ran is faster than its float counterpart."]
        ),
        "",
    ]


# ---------------------------------------------------------------------------------------------------
# figures


def op_type_chart(ops: pd.DataFrame, title: str, p50_ms: float | None = None, top: int = TOP_OP_TYPES) -> Figure:
    """One stacked horizontal bar of a cell's time per run by op type: its `top` op types, largest
    first, the rest as "other"; ops of an overhead category hatched; the cell's unprofiled p50 as a
    dashed line."""
    by_type = ops.groupby("op_type", sort=False)["ms_per_run"].sum().sort_values(ascending=False, kind="stable")
    category = ops.drop_duplicates("op_type").set_index("op_type")["category"]
    segments = [(str(t), float(ms), category.get(t) in OVERHEAD_CATEGORIES) for t, ms in by_type.head(top).items()]
    if len(by_type) > top:
        segments.append((f"other ({len(by_type) - top} op types)", float(by_type.iloc[top:].sum()), False))
    total = sum(ms for _, ms, _ in segments)
    fig = Figure(figsize=(9.0, 1.3 + 0.25 * ((len(segments) + 2) // 3)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(top)] + ["#bbbbbb"]
    left, handles = 0.0, list[Any]()
    for (name, ms, overhead), color in zip(segments, colors):
        share = ms / total * 100 if total else 0.0
        bar = ax.barh(
            0,
            ms,
            left=left,
            color=color,
            hatch="//" if overhead else None,
            edgecolor="white",
            label=f"{name} {ms_text(ms)} ms ({share:.0f}%)",
        )
        handles.append(bar)
        left += ms
    if p50_ms is not None:
        handles.append(
            ax.axvline(
                p50_ms, color="#222", linestyle="--", linewidth=1.2, label=f"p50 unprofiled {ms_text(p50_ms)} ms"
            )
        )
    ax.set_yticks([])
    ax.set_xlim(0, max(total, p50_ms or 0.0) * 1.02 or 1.0)
    ax.set_xlabel("ms per model call (profiled pass); hatched: quantize / dequantize / requantize / reorder")
    ax.set_title(title, fontsize="medium")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, frameon=False, fontsize="small")
    return fig


def figure_path(run_dir: Path, cell: Cell) -> Path:
    """figures/profile_<suite>_<model>_<backend>-<precision>_<device>_b<batch>.png."""
    name = figure_name(
        "profile", cell.suite, cell.model, f"{cell.backend}-{cell.precision}", cell.device, f"b{cell.batch_size}"
    )
    return run_dir / "figures" / f"{name}.png"


def profile_figure_paths(run_dir: Path) -> list[Path]:
    """The op-type figures report.html draws for this run's profiled cells (those on disk)."""
    profile = read_profile(run_dir)
    if profile is None:
        return []
    return [p for p in (figure_path(run_dir, cell) for cell in cell_profiles(profile)) if p.is_file()]


# ---------------------------------------------------------------------------------------------------
# report.html


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    text = "" if value is None or pd.isna(value) else fmt.format(value)
    return f'<td class="num">{text}</td>'


def _text(value: Any) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _table(head: list[str], rows: list[str], table_id: str = "") -> str:
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    ident = f' id="{table_id}"' if table_id else ""
    return (
        f'<div class="table-wrap"><table{ident}><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(f'<tr>{r}</tr>' for r in rows)}</tbody></table></div>"
    )


def _honesty(results: pd.DataFrame, profiled: Collection[Cell]) -> str:
    """Per cell: the profile's own cost and coverage against the unprofiled p50 (results' profile_*)."""
    rows, missing = [], []
    for cell, row in _result_rows(results).items():
        status = row.get("profile_status")
        if cell not in profiled:
            if row.get("status") == "ok":
                missing.append(
                    f"<li><b>{html.escape(cell_name(cell))}</b>: {html.escape(str(status or 'not profiled'))}</li>"
                )
            continue
        rows.append(
            _text(cell_name(cell, with_setting=True))
            + _num(_value(row, "latency_p50_ms"))
            + _num(_value(row, "profile_ms_per_run"))
            + _num(_value(row, "profile_overhead_pct"), "{:+.1f}")
            + _num(_value(row, "profile_ops_ms_per_run"))
            + _num(_value(row, "profile_ops_vs_p50_pct"), "{:.1f}")
            + _num(_value(row, "profile_layer_attributed_pct"), "{:.1f}")
            + _num(_value(row, "profile_qdq_reorder_pct"), "{:.1f}")
            + _text(row.get("profile_method") or "")
        )
    head = [
        "cell",
        "p50 ms",
        "profiled ms/run",
        "profiler overhead % (vs p50)",
        "ops ms/run",
        "ops % of p50",
        "layer-attributed % of ops",
        "q/dq/requant/reorder % of ops",
        "profiler",
    ]
    body = _table(head, rows, "profile-honesty") if rows else ""
    if missing:
        body += f'<p class="note">Cells that ran without a profile:</p><ul>{"".join(missing)}</ul>'
    return body


def _attribution_html(table: pd.DataFrame, rows: list[tuple[str, str]]) -> str:
    """Rows of the attribution table (given as (kind, item)) as HTML, ms per run, "—" where missing."""
    out = []
    for key in rows:
        kind, item = key
        name = item if kind == "layer" else "unattributed compute" if kind == UNATTRIBUTED else f"{kind} ops"
        out.append(_text(name) + "".join(_num(v) if pd.notna(v) else '<td class="num">—</td>' for v in table.loc[key]))
    return _table(["ms per run", *table.columns], out)


def _buckets_html(table: pd.DataFrame) -> str:
    rows = [(b, b) for b in BUCKETS]
    body = _attribution_html(table, rows)
    totals = "<tr>" + _text("total profiled ops") + "".join(_num(v) for v in table.sum(skipna=True)) + "</tr>"
    return body.replace("</tbody>", totals + "</tbody>")


def _not_faster_html(rows: pd.DataFrame, compared: bool) -> str:
    """The not-faster layers of one group (`not_faster_layers`); `compared`: an int8 cell of the group
    has a profiled float counterpart (else there was nothing to compare)."""
    if rows.empty:
        return (
            '<p class="note">None: every layer both profiles name is faster in int8.</p>'
            if compared
            else '<p class="note">None compared: no int8 cell here has a profiled float counterpart.</p>'
        )
    body = [
        _text(r.layer)
        + _text(r.int8)
        + _num(r.int8_ms)
        + _text(r.float)
        + _num(r.float_ms)
        + _num(r.ratio, "{:.2f}x")
        + _text(", ".join(v for v in (r.op_types, r.precisions) if v))
        for r in rows.itertuples()
    ]
    return _table(["layer", "int8 cell", "int8 ms/run", "float counterpart", "float ms/run", "ratio", "int8 ops"], body)


def _embedded(path: Path, alt: str) -> str:
    return f'<img class="figure" src="{png_file_uri(path)}" alt="{html.escape(alt)}">'


def _cell_html(run_dir: Path, cell: Cell, ops: pd.DataFrame, row: Mapping[str, Any] | None) -> str:
    """A cell's <details>: its op-type bar (also saved under figures/) and its slowest layers."""
    p50 = _value(row, "latency_p50_ms")
    total = float(ops["ms_per_run"].sum())
    fig = op_type_chart(ops, f"{cell_name(cell, with_setting=True)}: time per run by op type", p50)
    path = save_figure(fig, figure_path(run_dir, cell))
    layers = top_layers(ops)
    table = (
        _table(
            ["layer", "ms/run", "% of profiled ops", "precision(s)", "op types"],
            [
                _text(r.layer)
                + _num(r.ms_per_run)
                + _num(r.share_pct, "{:.1f}")
                + _text(r.precisions)
                + _text(r.op_types)
                for r in layers.itertuples()
            ],
        )
        if len(layers)
        else '<p class="note">The profiler named no layer for this cell.</p>'
    )
    summary = f"{cell.label}: {total:.3f} ms/run in profiled ops" + (f" (p50 {p50:.3f} ms)" if p50 is not None else "")
    return (
        f"<details><summary>{html.escape(summary)}</summary>\n"
        f"{_embedded(path, f'Stacked bar of {cell_name(cell)} time per run by op type')}\n"
        f'<p class="note">Slowest {TOP_LAYERS} layers (compute ops):</p>{table}</details>'
    )


def html_sections(run_dir: Path, results: pd.DataFrame) -> list[tuple[str, str]]:
    """report.html's profile section as (title, body HTML); none for a run without profile.parquet.
    Draws each profiled cell's op-type bar to figures/ (`figure_path`) and embeds it."""
    profile = read_profile(run_dir)
    if profile is None:
        return []
    profiles = cell_profiles(profile)
    rows = _result_rows(results)
    pairs = counterparts(results)
    tables = attribution_tables(profile, results)
    slower = not_faster_layers(profile, results)
    lines = not_faster_lines(profile, results)
    parts = [
        f'<p class="note">Per-operator profiles from <code>{PROFILE_FILE}</code> in this run folder (one row '
        "per operator). Times are ms per model call in the profiled pass, taken after the timing with the "
        "profiler on; p50 is the unprofiled timing. A layer's time is its compute ops; quantize, dequantize, "
        "requantize and reorder ops count in their own rows, whatever their layer; unattributed: compute ops "
        "the runtime named no layer for. An int8 cell is compared with its float counterpart: its own runtime's "
        "float cell where the run has it, else torch-eager fp32.</p>",
        "<h3>What the profiles can be trusted for</h3>",
        _honesty(results, profiles),
    ]
    if lines:
        parts.append(
            '<p class="note">int8 cells not faster than their float counterpart:</p><ul>'
            + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
            + "</ul>"
        )
    for group, table in tables.items():
        suite, model, device, batch = group
        layer_rows = [key for key in table.index if key[0] == "layer"]
        mine = slower[
            (slower["suite"] == suite)
            & (slower["model"] == model)
            & (slower["device"] == device)
            & (slower["batch_size"] == batch)
        ]
        parts += [
            f"<h3>{html.escape(f'{suite} / {model} ({device}, batch {batch})')}</h3>",
            '<p class="note">Overhead buckets and unattributed compute, ms per run:</p>',
            _buckets_html(table),
            '<p class="note">Layers whose int8 time is not lower than their float counterpart\'s:</p>',
            _not_faster_html(
                mine, compared=any(c.group == group and c in profiles and f in profiles for c, f in pairs.items())
            ),
            f"<details><summary>Every layer ({len(layer_rows)}) across the cells, ms per run</summary>"
            f"{_attribution_html(table, layer_rows)}</details>",
            *(
                _cell_html(run_dir, cell, profiles[cell], rows.get(cell))
                for cell in _ordered([c for c in profiles if c.group == group], pairs)
            ),
        ]
    return [("Profiles: where each cell's time goes", "\n".join(parts))]
