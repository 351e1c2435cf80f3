"""The Python API (`import segbench`): run, tune, compare and load a run folder from a notebook or a
user's own test suite, with typed results instead of printed tables and exceptions instead of exit codes.

Why it goes through the command line's parser: the keyword arguments are the options (`min_time=0.2` is
`--min-time 0.2`, `backends=["ort"]` is `--backends ort`, `no_gradcam=True` is `--no-gradcam`), checked
by the same types and choices, so the API accepts and refuses exactly what `segbench run` does, with the
same one-line message, raised as `UsageError` (bench.cli.config_file). A `config=` file is read first,
the keyword arguments win over it, as flags do on the command line.

What it does not do that the command does: print. Progress goes through stdlib `logging` (the
`segbench.progress` logger at INFO: `logging.getLogger("segbench").setLevel(logging.WARNING)` silences
it); third-party output still goes to the run folder's logs/, as with the command.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import UsageError

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from bench.decide.decision import Decision
    from bench.report.compare import Comparison
    from bench.results.verdict import RunVerdict

__all__ = ["CompareResult", "Measure", "RunResult", "TuneResult", "UsageError", "compare", "load", "run", "tune"]


@dataclass(frozen=True)
class Measure:
    """One number of a row with its 95% interval where the run has one (`<column>_ci_low/_high`: the
    speedup's from the interleaved rounds, the quality drifts' from a paired bootstrap over images)."""

    column: str
    value: float
    low: float | None = None
    high: float | None = None

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class RunResult:
    """A finished run folder: its rows, its decision and the verdict of its bounds.

    `rows` is results.parquet (one row per suite, model, backend and precision; the columns of
    docs/columns.md); `decision` what the run recommends under its budgets (None: no ok rows to decide
    on); `verdict` the cells that ended in error and the `fail_on` bounds a row missed (`ok`: neither)."""

    folder: Path
    rows: pd.DataFrame
    decision: Decision | None
    verdict: RunVerdict

    @property
    def ok(self) -> bool:
        """Every cell ran (or is unavailable here) and every fail_on bound held: the command's exit 0."""
        return self.verdict.exit_code == 0

    def row(self, backend: str, **where: Any) -> pd.Series:
        """The one row of `backend` (NAME or NAME:PRECISION), narrowed by column values (`model="unet"`)
        where the run has several; a LookupError names what matched when it is not exactly one."""
        name, _, precision = backend.partition(":")
        picked = self.rows[self.rows["backend"] == name]
        if precision:
            picked = picked[picked["precision"] == precision]
        for column, value in where.items():
            if column not in picked:
                raise LookupError(f"no column '{column}' in {self.folder}/results.parquet")
            picked = picked[picked[column] == value]
        if len(picked) != 1:
            cells = ", ".join(sorted(_cell_text(r) for _, r in picked.iterrows()))
            found = f"{len(picked)} rows ({cells})" if len(picked) else "no row"
            raise LookupError(
                f"{backend} {where or ''}: {found} in {self.folder}; narrow with model=, suite=, batch_size=, "
                "input_size= ..."
            )
        return picked.iloc[0]

    def measure(self, backend: str, column: str, **where: Any) -> Measure:
        """`column` of `backend`'s row with its interval (`speedup_vs_fp32`, `miou_drift`, `latency_p50_ms`)."""
        row = self.row(backend, **where)
        if column not in row.index:
            raise LookupError(f"no column '{column}' in {self.folder}/results.parquet")

        def number(name: str) -> float | None:
            value = row.get(name)
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

        value = number(column)
        if value is None:
            status = row.get("status")
            raise LookupError(f"{backend}: {column} has no value (status: {status})")
        return Measure(column, value, number(f"{column}_ci_low"), number(f"{column}_ci_high"))

    def speedup(self, backend: str, **where: Any) -> Measure:
        """The speedup over fp32 eager measured in this run, with its interval."""
        return self.measure(backend, "speedup_vs_fp32", **where)


def _cell_text(row: pd.Series) -> str:
    """suite/model/backend:precision, with the shape where a sweep made several (` b2 512x512`)."""
    size = row.get("input_size") or ""
    shape = f" b{row.get('batch_size')}" + (f" {size}" if size else "")
    return f"{row['suite']}/{row['model']}/{row['backend']}:{row['precision']}{shape}"


@dataclass(frozen=True)
class TuneResult:
    """A finished tune: its folder, whether a configuration met every budget, what was chosen (the
    message, and the `--option` line `run` accepts), the variants that ended in error, and the tables."""

    folder: Path
    met: bool
    message: str
    option_line: str | None
    errors: tuple[str, ...]
    slower: str  # the chosen configuration is slower than fp32 eager: why ("" when it is faster)

    def table(self, name: str = "tuning") -> pd.DataFrame:
        """sensitivity, tuning or calibration (the tune folder's `<name>.parquet`)."""
        from bench.results.files import read_table

        path = self.folder / f"{name}.parquet"
        if not path.is_file():
            raise LookupError(f"{self.folder} has no {name}.parquet")
        return read_table(path)


@dataclass(frozen=True)
class CompareResult:
    """Two runs compared cell by cell: the table (one row per matched cell), the regressions (the
    command's exit 1) and the cells only one side has."""

    comparison: Comparison

    @property
    def table(self) -> pd.DataFrame:
        return self.comparison.table

    @property
    def regressions(self) -> tuple[str, ...]:
        return tuple(self.comparison.regressions)


def _settled(command: str, config: str | Path | None, options: Mapping[str, Any]) -> argparse.Namespace:
    """The command's options as its parser would leave them: defaults, then `config`, then `options`."""
    from bench.cli.app import build_parser, settled

    parser = build_parser()
    args = parser.parse_args([command] + (["--config", str(config)] if config is not None else []))
    return settled(parser, args, given=(), settings=options, source=f"segbench.{command}()")


def run(config: str | Path | None = None, **options: Any) -> RunResult:
    """`segbench run` from Python: `options` are its options (`models="unet"`, `backends=["torch-eager",
    "ort-qdq-int8"]`, `no_gradcam=True`, `min_time=0.2`, `fail_on=["speedup_vs_fp32>=1"]`), `config` a
    TOML file of them. Raises UsageError on a bad option before anything runs; a cell that fails is a row
    with its error (`result.ok` is False), not an exception."""
    from bench.cli.options import _into_logs
    from bench.cli.run import run_config
    from bench.output.capture import captured_command
    from bench.output.terminal import progress
    from bench.run.fail_on import check_budgets, check_fail_on
    from bench.run.runner import run_benchmark

    args = _settled("run", config, options)
    settings = run_config(args)
    check_fail_on(args.fail_on, settings)  # before any work: a bad bound costs nothing
    check_budgets(settings)
    with captured_command() as capture:
        folder = run_benchmark(settings, log=progress, on_folder=_into_logs(capture, args))
    return load(folder, fail_on=args.fail_on)


def load(folder: str | Path, fail_on: Iterable[str] = ()) -> RunResult:
    """A run folder (results/<id>, results/latest or a merged one) as a RunResult; `fail_on` judges its
    rows as `segbench run --fail-on` would."""
    import pandas as pd

    from bench.report.compare import load_run
    from bench.report.decision import run_decision
    from bench.results.bounds import parse_bounds
    from bench.results.verdict import judge_rows

    path = Path(folder).resolve()
    nodes = sorted(path.glob("nodes/*")) if not (path / "results.parquet").is_file() else []
    tables = [load_run(node).results for node in nodes] if nodes else [load_run(path).results]
    rows = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    ok = rows["status"].astype(str).eq("ok").any() if "status" in rows else False
    decision = run_decision(nodes[0] if nodes else path, tables[0]) if ok and len(tables) == 1 else None
    bounds = parse_bounds(tuple(fail_on), "--fail-on")
    return RunResult(path, rows, decision, judge_rows(rows.to_dict("records"), bounds))


def tune(config: str | Path | None = None, **options: Any) -> TuneResult:
    """`segbench tune` of one backend from Python (`suite=`, `model=`, `backend=`, `budget=[...]` and the
    rest of its options, or a `config` file). Raises UsageError on bad options, and TuneFailed when the
    tune cannot go on (the command's exit 1 with its message); a budget not met is `met=False`."""
    from bench.cli.options import _into_logs
    from bench.cli.tune import several_backends, tune_config
    from bench.output.capture import captured_command
    from bench.output.terminal import progress
    from bench.tune.runner import run_tune

    args = _settled("tune", config, options)
    settings = tune_config(args)
    if several_backends(settings.backend):
        raise UsageError(f"segbench.tune(): backend '{settings.backend}': one backend per call from Python")
    with captured_command() as capture:
        outcome = run_tune(settings, log=progress, on_folder=_into_logs(capture, args))
    return TuneResult(outcome.folder, outcome.met, outcome.message, outcome.option_line, outcome.errors, outcome.slower)


def compare(
    baseline: str | Path,
    current: str | Path,
    latency_threshold: float | None = None,
    quality_threshold: float | None = None,
) -> CompareResult:
    """`segbench compare BASELINE CURRENT`: every declared column judged cell by cell (thresholds: the
    command's defaults unless given)."""
    from bench.cli.app import build_parser
    from bench.report.compare import compare_runs, load_run

    argv = ["compare", str(baseline), str(current)]
    if latency_threshold is not None:
        argv += ["--latency-threshold", str(latency_threshold)]
    if quality_threshold is not None:
        argv += ["--quality-threshold", str(quality_threshold)]
    args = _parsed(build_parser(), argv)
    comparison = compare_runs(
        load_run(Path(baseline)), load_run(Path(current)), args.latency_threshold, args.quality_threshold
    )
    return CompareResult(comparison)


def _parsed(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argv parsed, a bad value raised as UsageError rather than argparse's exit."""
    import contextlib
    import io

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(argv)
    except SystemExit:
        message = stderr.getvalue().strip().removeprefix("segbench: error: ")
        raise UsageError(message or f"segbench {' '.join(argv)}: not valid") from None
