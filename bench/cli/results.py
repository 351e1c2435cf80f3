"""What segbench does with finished run folders: merge (a sharded run's parts), report, compare, export
and history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.cli.options import _fraction, _positive_float, examples
from bench.errors import UsageError
from bench.report.compare import COMPARE_BY
from bench.report.compare import FORMATS as COMPARE_FORMATS
from bench.report.dashboard_export import FORMATS as DASHBOARD_FORMATS
from bench.report.pytest_benchmark import FORMATS as PYTEST_BENCHMARK_FORMATS
from bench.results.columns import (
    GRADCAM_CORRELATION_THRESHOLD,
    LATENCY_THRESHOLD,
    PER_CLASS_THRESHOLD,
    SCORE_THRESHOLD,
)
from bench.run.merge import PREFER_CHOICES

# every export format, each listed by the module that writes it
EXPORT_FORMATS = (*PYTEST_BENCHMARK_FORMATS, *DASHBOARD_FORMATS)

_QUALITY_THRESHOLD_HELP = (
    "smallest change (absolute) that counts in every score column: quality, drift, agreement, boundary, per-class "
    "and Grad-CAM; default: each column's own declared threshold (bench/results/columns.py: "
    f"{SCORE_THRESHOLD:g} for aggregate scores, {PER_CLASS_THRESHOLD:g} per class and for the top-10%% IoU, "
    f"{GRADCAM_CORRELATION_THRESHOLD:g} for Grad-CAM correlations); sqnr_db keeps its 1 dB"
)


def _add_quality_threshold(parser: argparse.ArgumentParser) -> None:
    """compare's and history's --quality-threshold."""
    parser.add_argument("--quality-threshold", type=_positive_float, help=_QUALITY_THRESHOLD_HELP)


def add_results_parsers(sub: Any) -> None:
    """merge, report, compare, export and history, in the order the top-level help lists them."""
    merge = sub.add_parser(
        "merge",
        help="join the folders of a sharded run (run --shard K/N) into one run; exit 1 on a duplicate or missing cell",
        epilog=examples("segbench merge results-shard-1/latest results-shard-2/latest --out results/merged"),
    )
    merge.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="the parts' run folders")
    merge.add_argument("--out", type=Path, required=True, help="the merged run folder (must not exist, or be empty)")
    merge.add_argument(
        "--prefer",
        choices=PREFER_CHOICES,
        help="a cell in two folders: take its whole comparison group from the newest (env.json date) instead of "
        "refusing",
    )

    report = sub.add_parser(
        "report",
        help="regenerate report.md and report.html of a run folder",
        epilog=examples("segbench report results/latest"),
    )
    report.add_argument("run_dir", type=Path, help="a run or tune folder")

    compare = sub.add_parser(
        "compare",
        help="compare two run folders; exit 1 on a regression",
        epilog=examples(
            "segbench compare results/baseline results/latest",
            "segbench compare results/baseline results/latest --latency-threshold 5% --out compare.md",
            "segbench compare results/machine-a results/machine-b --by machine",
        ),
    )
    compare.add_argument("baseline", type=Path, help="the run folder compared against")
    compare.add_argument("current", type=Path, help="the run folder judged")
    compare.add_argument(
        "--latency-threshold",
        type=_fraction,
        default=LATENCY_THRESHOLD,
        metavar="PCT",
        help=f"median slowdown that counts, e.g. {LATENCY_THRESHOLD * 100:.0f}%% (default) or {LATENCY_THRESHOLD:g}",
    )
    _add_quality_threshold(compare)
    compare.add_argument("--by", choices=COMPARE_BY, help="group side by side per machine (hardware report)")
    compare.add_argument(
        "--format",
        choices=COMPARE_FORMATS,
        default="markdown",
        dest="compare_format",
        help="markdown (default) or json: every compared column's verdict, for CI (exit codes the same)",
    )
    compare.add_argument("--out", type=Path, help="also write the comparison, in --format, to this file")

    export = sub.add_parser(
        "export",
        help="write a run folder in another tool's format: pytest-benchmark JSON, Bencher Metric Format (bmf), "
        "github-action-benchmark's custom JSON",
        epilog=examples(
            "segbench export results/latest --format pytest-benchmark --out bench.json",
            "segbench export results/latest --format bmf --out bmf.json",
        ),
    )
    export.add_argument("run_dir", type=Path, help="the run folder")
    export.add_argument(
        "--format", required=True, choices=EXPORT_FORMATS, dest="export_format", help="the other tool's format"
    )
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the file to write, e.g. bench.json; github-action-benchmark writes two: the smaller-is-better "
        "results there (tool customSmallerIsBetter) and the bigger-is-better ones beside it, with .bigger before "
        "the suffix (bench.bigger.json, tool customBiggerIsBetter)",
    )

    history = sub.add_parser(
        "history",
        help="change points over every run folder under a results root; exit 1 on a change in the newest runs",
        epilog=examples("segbench history results/", "segbench history results/ --since 2026-01-01 --recent 5"),
    )
    history.add_argument("results_root", type=Path, metavar="RESULTS_ROOT", help="the folder the run folders are in")
    history.add_argument("--since", metavar="DATE", help="only runs dated on or after DATE (YYYY-MM-DD)")
    history.add_argument(
        "--out", type=Path, help="the HTML page (default RESULTS_ROOT/history.html; the Markdown goes beside it, .md)"
    )
    history.add_argument(
        "--recent",
        type=int,
        default=3,
        metavar="N",
        help="exit 1 when a change starts in the newest N runs (default 3)",
    )
    _add_quality_threshold(history)


def _cmd_merge(args: argparse.Namespace) -> int:
    from bench.run.merge import merge_run_folders

    result = merge_run_folders(args.run_dirs, args.out, prefer=args.prefer)
    for line in result.warnings:
        print(f"segbench merge: warning: {line}", file=sys.stderr)
    for line in result.duplicates:
        print(f"segbench merge: duplicate: {line}", file=sys.stderr)
    for line in result.missing:
        print(f"segbench merge: missing: {line}", file=sys.stderr)
    if not result.written:
        print(f"nothing written: {len(result.duplicates)} cell(s) in more than one folder (or: --prefer newest)")
    else:
        gap = f"; {len(result.missing)} planned cell(s) missing" if result.missing else ""
        print(f"merged: {args.out}/ ({result.rows} rows from {len(args.run_dirs)} folder(s){gap})")
    return result.exit_code


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.report.files import write_reports
    from bench.results.files import check_run_folder

    if (args.run_dir / "tune.json").is_file():
        from bench.tune.config import load_tune_config
        from bench.tune.runner import write_reports as write_tune_reports

        for path in write_tune_reports(args.run_dir, load_tune_config(args.run_dir)):
            print(path)
        return 0
    if not (args.run_dir / "results.parquet").is_file():
        raise UsageError(f"'{args.run_dir}' has no results.parquet; expected a segbench run or tune folder")
    check_run_folder(args.run_dir)  # a damaged file stops it before any report is rewritten
    for path in write_reports(args.run_dir):
        print(path)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from bench.cache import atomic_write_bytes
    from bench.report.pytest_benchmark import export_pytest_benchmark

    if not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: folder '{args.out.parent}' does not exist")
    if args.export_format in DASHBOARD_FORMATS:
        from bench.report.dashboard_export import export_files

        files, dropped = export_files(args.run_dir, args.export_format, args.out)
        texts = [(path, json.dumps(document, indent=2, allow_nan=False), what) for path, document, what in files]
        for path, text, what in texts:  # every file made before any is written
            atomic_write_bytes(path, text.encode())
            print(f"{path}: {what}")
        for line in dropped:
            print(f"left out: {line}")
        return 0
    document, left_out = export_pytest_benchmark(args.run_dir)
    atomic_write_bytes(args.out, json.dumps(document, indent=2).encode())
    print(f"{args.out}: {len(document['benchmarks'])} benchmark(s) in pytest-benchmark's format")
    for line in left_out:
        print(f"left out (no timing): {line}")
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from bench.cache import atomic_write_bytes
    from bench.report.history import build_history, parse_since
    from bench.report.history_page import to_html, to_markdown

    if args.recent < 1:
        raise UsageError(f"--recent {args.recent} is not valid; expected a number of runs >= 1")
    since = parse_since(args.since) if args.since is not None else None
    out = args.out if args.out is not None else args.results_root / "history.html"
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder '{out.parent}' does not exist")
    history = build_history(args.results_root, since, args.quality_threshold)
    text = to_markdown(history, args.recent)
    atomic_write_bytes(out, to_html(history, args.recent).encode())
    atomic_write_bytes(out.with_suffix(".md"), text.encode())
    print(text)
    print(f"written: {out} and {out.with_suffix('.md')}")
    return 1 if history.recent_changes(args.recent) else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.report.compare import compare_runs, load_run, to_markdown

    baseline, current = load_run(args.baseline), load_run(args.current)
    comparison = compare_runs(
        baseline, current, args.latency_threshold, args.quality_threshold, judge_latency=args.by != "machine"
    )
    if args.compare_format == "json":
        import json

        from bench.report.compare_json import compare_json

        text = json.dumps(compare_json(comparison, baseline, current), indent=2, allow_nan=False)
    else:
        text = to_markdown(comparison, baseline, current, by_machine=args.by == "machine")
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if comparison.regressions else 0
