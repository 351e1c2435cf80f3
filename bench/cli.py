"""Command line: parses, calls the library, prints. Library errors become one line and exit 2.

Over 400 lines (every command's parser and handler): its split into one module per command, with the
timing options shared by run and tune, is issue 32's, which moves the whole layout at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bench.decide.decision import OBJECTIVES
from bench.errors import UsageError
from bench.measure.priority import DEFAULT_PRIORITY, PRIORITIES
from bench.output.capture import COMMAND_LOG, OutputCapture, captured_command
from bench.output.terminal import terminal
from bench.results.columns import (
    GRADCAM_CORRELATION_THRESHOLD,
    LATENCY_THRESHOLD,
    PER_CLASS_THRESHOLD,
    SCORE_THRESHOLD,
)

if TYPE_CHECKING:
    from bench.results.bounds import Bound
    from bench.results.verdict import RunVerdict

EXIT_USAGE = 2


def _names(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    return names


def _fraction(value: str) -> float:
    """'10%' or '0.1' -> 0.1."""
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a percentage like 10% or a fraction like 0.1") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"'{value}' must not be negative")
    return number


def _shard(value: str) -> Any:  # -> bench.run.shard.Shard
    from bench.run.shard import parse_shard

    try:
        return parse_shard(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None  # argparse names it


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"'{value}' must be greater than 0")
    return number


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other usage error
        print(f"segbench: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"'{value}' must be a number of seconds >= 0")
    return number


QUIET_WAIT_ENV = "SEGBENCH_WAIT_FOR_QUIET"  # the default of --wait-for-quiet (a test suite sets 0)
DEFAULT_QUIET_WAIT_S = 120.0
_QUIET_WAIT_HELP = (
    "seconds each group of interleaved backends may wait, in all, for the machine to leave a slow state "
    f"before a timing cycle (default ${QUIET_WAIT_ENV} or {DEFAULT_QUIET_WAIT_S:.0f}; 0 never waits)"
)


def _quiet_wait_s(given: float | None) -> float:
    """--wait-for-quiet, else the environment's default, else DEFAULT_QUIET_WAIT_S."""
    import os

    if given is not None:
        return given
    value = os.environ.get(QUIET_WAIT_ENV)
    if value is None:
        return DEFAULT_QUIET_WAIT_S
    try:
        return _non_negative_float(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"environment variable {QUIET_WAIT_ENV}: {exc}") from None


_QUALITY_THRESHOLD_HELP = (
    "smallest change (absolute) that counts in every score column: quality, drift, agreement, boundary, per-class "
    "and Grad-CAM; default: each column's own declared threshold (bench/results/columns.py: "
    f"{SCORE_THRESHOLD:g} for aggregate scores, {PER_CLASS_THRESHOLD:g} per class and for the top-10%% IoU, "
    f"{GRADCAM_CORRELATION_THRESHOLD:g} for Grad-CAM correlations); sqnr_db keeps its 1 dB"
)

PRIORITY_ENV = "SEGBENCH_PRIORITY"  # the default of --priority
_PRIORITY_HELP = (
    "what every timed round runs at: realtime (SCHED_RR, the default: a busy core then bends no ratio), "
    "high (nice -10) or normal; where the system refuses a level, the next one down, and the row's "
    f"timing_priority says what it got (default ${PRIORITY_ENV} or realtime)"
)


def _priority(given: str | None) -> str:
    """--priority, else the environment's default, else bench.measure.priority.DEFAULT_PRIORITY."""
    import os

    if given is not None:
        return given
    value = os.environ.get(PRIORITY_ENV, DEFAULT_PRIORITY)
    if value not in PRIORITIES:
        raise UsageError(f"environment variable {PRIORITY_ENV}: '{value}', expected one of {', '.join(PRIORITIES)}")
    return value


def build_parser(with_defaults: bool = True) -> argparse.ArgumentParser:
    """The command line; `with_defaults=False` leaves the run options that were not given out of the
    namespace (how a resume finds the options it must refuse)."""
    from bench.environment import default_threads
    from bench.run.config import DEFAULT_BACKENDS, DEFAULT_MODELS, DEFAULT_SUITE

    parser = _Parser(prog="segbench", description="Benchmark segmentation models across quantization backends.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the benchmark matrix and write results/<run-id>/")
    run.add_argument(
        "--suite",
        "--suites",
        dest="suites",
        type=_names,
        default=(DEFAULT_SUITE,),
        help=f"suite name(s), comma-separated (default {DEFAULT_SUITE})",
    )
    run.add_argument(
        "--models",
        "--model",
        dest="models",
        type=_names,
        default=DEFAULT_MODELS,
        help="model names, comma-separated, or your own model as package.module:factory "
        "(a callable returning an nn.Module)",
    )
    run.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="state dict for the (one) model, loaded with weights_only=True; default: train the reference",
    )
    run.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="the reference checkpoint of the (one) model, from segbench train --export: the same float model "
        "on every machine of a hardware comparison",
    )
    run.add_argument(
        "--onnx",
        type=Path,
        metavar="FILE",
        help="your fp32 ONNX file of the (one) model, used by the ONNX-based backends instead of an export",
    )
    run.add_argument("--data-dir", type=Path, metavar="DIR", help="the suite's data folder (real-data suites)")
    _add_split(run)
    run.add_argument(
        "--gradcam-layer",
        dest="gradcam_layers",
        action="append",
        type=_names,
        default=[],
        metavar="LAYER",
        help="Grad-CAM feature layer(s), module paths, repeatable or comma-separated "
        "(default: each model's documented layer)",
    )
    run.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM stage")
    run.add_argument(
        "--profile",
        action="store_true",
        help="after timing, a profiled pass of every cell with its runtime's own profiler: time per operator, "
        "layer and precision in profile.parquet, attributed in the report (never in the latency columns)",
    )
    run.add_argument(
        "--profile-calls",
        type=int,
        default=20,
        metavar="N",
        help="calls in each cell's profiled pass (default 20)",
    )
    run.add_argument(
        "--gradcam-method",
        choices=("fd", "fakequant", "both"),
        default="both",
        help="quantized backends' Grad-CAM: finite differences on the artifact's own head (fd), autograd "
        "through its fake-quant simulation (fakequant), or both (default; fd fills the main columns)",
    )
    run.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="foreground probability threshold of a single-output (sigmoid) binary model",
    )
    run.add_argument(
        "--backends",
        type=_names,
        default=DEFAULT_BACKENDS,
        help="backends, comma-separated; NAME or NAME:PRECISION (e.g. torch-eager:bf16); "
        "default: every registered backend",
    )
    run.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results/)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="intra-op threads for every backend (default: physical cores)",
    )
    run.add_argument("--batch-size", type=int, default=1)
    run.add_argument("--min-time", type=_positive_float, default=3.0, help="minimum timed seconds per cell")
    run.add_argument("--min-iters", type=int, default=30, help="minimum timed iterations per cell")
    run.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (at least 5 calls)")
    run.add_argument(
        "--timing",
        choices=("interleaved", "sequential"),
        default="interleaved",
        help="interleaved (default): the backends of one suite and model are timed in alternating rounds, so "
        "load on the machine hits them alike; sequential: one backend after the other",
    )
    run.add_argument("--wait-for-quiet", type=_non_negative_float, metavar="SECONDS", help=_QUIET_WAIT_HELP)
    run.add_argument("--priority", choices=PRIORITIES, help=_PRIORITY_HELP)
    run.add_argument("--timeout", type=_positive_float, default=1800.0, help="per-cell timeout in seconds")
    run.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="BACKEND.KEY=VALUE",
        help="backend option, repeatable (e.g. ort-qdq-int8.calibration=entropy)",
    )
    run.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local (default) or ray: every (suite, model) group a task on a Ray node with a segbench slot",
    )
    run.add_argument(
        "--address", dest="ray_address", metavar="ADDR", help="the Ray cluster (default auto; local: start one here)"
    )
    run.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Ray nodes to use: a node label (ray start --labels KEY=VALUE) or resource=NAME (repeatable)",
    )
    run.add_argument(
        "--per-node", action="store_true", help="with --executor ray: the whole matrix once on every matching node"
    )
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="measure part K of N of the matrix (whole comparison groups, dealt by a hash of each group's "
        "identity), for one job of a CI job matrix; segbench merge joins the parts' folders",
    )
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--fail-on",
        dest="fail_on",
        action="append",
        default=[],
        metavar="COLUMN>=X",
        help="after the run, exit 1 when a row misses this bound (COLUMN>=X or COLUMN<=X, repeatable, the grammar "
        "of tune --budget; any declared row metric, e.g. dice_drift>=-0.01, speedup_vs_fp32>=2, "
        "latency_p50_ms<=12, model_size_bytes<=3e6); rows with noisy timing are not judged on latency or speed, "
        "unavailable rows not at all; may be given beside --resume (it is not saved in run.json)",
    )

    run.add_argument(
        "--budget",
        dest="budgets",
        action="append",
        default=[],
        metavar="COLUMN>=X",
        help="the decision at the end of the run recommends the best cell that meets every budget (repeatable; the "
        "grammar of --fail-on, e.g. miou_drift>=-0.01, backend_rss_mib<=300, model_size_bytes<=4e6); judged "
        "with each number's 95%% interval where it has one (met, uncertain, failed). Default: keep >= 99%% of "
        "the fp32 reference's mIoU (Dice for two classes), MLPerf's rule",
    )
    run.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help="what the decision ranks the cells meeting every budget on (default latency: the same-run "
        "speedup, ties within noise broken by quality, then size, then memory)",
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="finish an interrupted run in DIR without recomputing its finished cells, with the settings it "
        "was started with (only --quiet, --fail-on, --budget and --objective may be added: they judge, they "
        "do not measure)",
    )
    if not with_defaults:  # only what the command line gives appears in the namespace
        for action in run._actions:
            action.default = argparse.SUPPRESS
    # which option sets which setting, so that a resume can name the options it will not take
    run.set_defaults(option_names={a.dest: a.option_strings[0] for a in run._actions if a.option_strings})

    _add_tune(sub, default_threads())

    merge = sub.add_parser(
        "merge",
        help="join the folders of a sharded run (run --shard K/N) into one run; exit 1 on a duplicate or missing cell",
    )
    merge.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    merge.add_argument("--out", type=Path, required=True, help="the merged run folder (must not exist, or be empty)")
    merge.add_argument(
        "--prefer",
        choices=("newest",),
        help="a cell in two folders: take its whole comparison group from the newest (env.json date) instead of "
        "refusing",
    )

    report = sub.add_parser("report", help="regenerate report.md and report.html of a run folder")
    report.add_argument("run_dir", type=Path)

    compare = sub.add_parser("compare", help="compare two run folders; exit 1 on a regression")
    compare.add_argument("baseline", type=Path)
    compare.add_argument("current", type=Path)
    compare.add_argument(
        "--latency-threshold",
        type=_fraction,
        default=LATENCY_THRESHOLD,
        metavar="PCT",
        help=f"median slowdown that counts, e.g. {LATENCY_THRESHOLD * 100:.0f}%% (default) or {LATENCY_THRESHOLD:g}",
    )
    compare.add_argument("--quality-threshold", type=_positive_float, help=_QUALITY_THRESHOLD_HELP)
    compare.add_argument("--by", choices=("machine",), help="group side by side per machine (hardware report)")
    compare.add_argument("--out", type=Path, help="also write the Markdown to this file")

    export = sub.add_parser("export", help="write a run folder in another tool's format (pytest-benchmark JSON)")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", required=True, choices=("pytest-benchmark",), dest="export_format")
    export.add_argument("--out", type=Path, required=True, help="the file to write, e.g. bench.json")

    history = sub.add_parser(
        "history",
        help="change points over every run folder under a results root; exit 1 on a change in the newest runs",
    )
    history.add_argument("results_root", type=Path, metavar="RESULTS_ROOT")
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
    history.add_argument("--quality-threshold", type=_positive_float, help=_QUALITY_THRESHOLD_HELP)

    lister = sub.add_parser("list", help="list suites, models or backends")
    lister.add_argument("what", choices=("suites", "models", "backends"))

    lister.add_argument("--data-dir", type=Path, metavar="DIR", help="where to look for a suite's data")

    train = sub.add_parser("train", help="train (or find) the cached reference checkpoint")
    train.add_argument("--suite", default=DEFAULT_SUITE)
    train.add_argument("--model", default="unet")
    train.add_argument("--data-dir", type=Path, metavar="DIR", help="the suite's data folder")
    _add_split(train)
    train.add_argument("--force", action="store_true", help="retrain even when a checkpoint is cached")
    train.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="also write the checkpoint to FILE, for runs on other machines (segbench run --checkpoint)",
    )
    return parser


def _add_split(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split",
        dest="splits",
        action="append",
        default=[],
        metavar="NAME=COUNT",
        help="a split's count instead of the suite file's, repeatable (e.g. train=0.8, evaluation=all): an integer, "
        'a fraction of the items the split draws from, or "all" the other splits leave; for every suite',
    )


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in _names(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a comma-separated list of integers") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"'{value}': every size must be at least 1")
    return sizes


def _add_tune(sub: Any, threads: int) -> None:
    tune = sub.add_parser(
        "tune",
        help="which layers break int8 (sensitivity), the fastest mixed-precision model within a quality budget, "
        "and how calibration size and method matter; writes results/tune-<id>/",
    )
    tune.add_argument("--suite", help="the suite (it needs a tuning split: tuning = N under [splits])")
    tune.add_argument("--model", help="the model (a zoo name or package.module:factory)")
    tune.add_argument(
        "--backend",
        help="the int8 backend to tune, e.g. torch-fx-int8; several (a,b,c) or all: each tuned, then the tuned "
        "configurations run together with fp32 eager and decided under the budgets (bench/tune/across.py)",
    )
    tune.add_argument(
        "--budget",
        dest="budgets",
        action="append",
        default=[],
        metavar="COLUMN>=X",
        help="quality budget on the tuning split, repeatable: any quality, drift, agreement, per-class, boundary, "
        "SQNR or Grad-CAM column (e.g. miou_drift>=-0.005, min_class_iou_drift>=-0.02, gradcam_pearson>=0.95); "
        "the first ranks the layers",
    )
    tune.add_argument(
        "--allow-slower",
        action="store_true",
        help="exit 0 when the configuration that meets the budgets is slower than fp32 eager (by default that "
        "is exit 1: quantizing does not pay)",
    )
    tune.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="BACKEND.KEY=VALUE",
        help="the tuned backend's other options, repeatable (its float_layers is what tune chooses)",
    )
    tune.add_argument("--weights", type=Path, metavar="FILE", help="state dict of the model (default: the reference)")
    tune.add_argument(
        "--checkpoint", type=Path, metavar="FILE", help="reference checkpoint from segbench train --export"
    )
    tune.add_argument("--data-dir", type=Path, metavar="DIR", help="the suite's data folder (real-data suites)")
    _add_split(tune)
    tune.add_argument("--max-layers", type=int, help="measure the N layers of lowest SQNR only (default: every layer)")
    tune.add_argument(
        "--max-steps", type=int, help="give up after N layers in float (default: every layer that helped)"
    )
    tune.add_argument(
        "--sqnr-images", type=int, default=4, help="tuning images the layer SQNR proxy runs on (default 4)"
    )
    tune.add_argument(
        "--calibration-sizes",
        type=_sizes,
        default=(),
        metavar="N,N,...",
        help="calibration study: image counts, drawn from the calibration and training splits",
    )
    tune.add_argument(
        "--calibration-methods",
        type=_names,
        default=(),
        metavar="M,M,...",
        help="calibration study: the backend's calibration option values (e.g. minmax,entropy,percentile)",
    )
    tune.add_argument("--seeds", type=int, default=1, help="calibration study: draws per size and method (default 1)")
    tune.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results/)")
    tune.add_argument("--threads", type=int, default=threads, help="intra-op threads (default: physical cores)")
    tune.add_argument("--min-time", type=_positive_float, default=3.0, help="minimum timed seconds per step")
    tune.add_argument("--min-iters", type=int, default=30, help="minimum timed iterations per step")
    tune.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (at least 5 calls)")
    tune.add_argument("--wait-for-quiet", type=_non_negative_float, metavar="SECONDS", help=_QUIET_WAIT_HELP)
    tune.add_argument("--priority", choices=PRIORITIES, help=_PRIORITY_HELP)
    tune.add_argument("--timeout", type=_positive_float, default=1800.0, help="per-variant timeout in seconds")
    tune.add_argument("--quiet", action="store_true", help="no progress output")
    tune.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="finish an interrupted tune in DIR with the settings it was started with",
    )


def _cmd_tune(args: argparse.Namespace) -> int:
    from bench.data.suite import split_overrides
    from bench.measure.timing import TimingConfig
    from bench.tune.config import TuneConfig, load_tune_config
    from bench.tune.runner import TuneFailed, run_tune

    log = _progress_log(args.quiet)
    if args.resume is not None:
        given = [
            flag
            for flag, value in (
                ("--suite", args.suite),
                ("--model", args.model),
                ("--backend", args.backend),
                ("--budget", args.budgets),
                ("--option", args.options),
                ("--split", args.splits),
            )
            if value
        ]
        if given:
            raise UsageError(
                f"--resume finishes {args.resume} with the settings it was started with; drop {', '.join(given)}"
            )
        config = replace(load_tune_config(args.resume), progress=not args.quiet)
    else:
        missing = [
            flag
            for flag, value in (("--suite", args.suite), ("--model", args.model), ("--backend", args.backend))
            if not value
        ]
        if missing:
            raise UsageError(f"segbench tune needs {', '.join(missing)}")
        options = _backend_options(args.options)
        splits = split_overrides(args.splits)
        name = args.backend.partition(":")[0]
        several = "," in args.backend or args.backend == "all"  # bench.tune.across.ALL
        if not several and (other := sorted(set(options) - {name})):
            raise UsageError(f"--option names backend '{other[0]}'; tune takes options of --backend {name} only")
        config = TuneConfig(
            suite=args.suite,
            model=args.model,
            backend=args.backend,
            budgets=tuple(args.budgets),
            backend_options=options.get(name, {}),
            threads=args.threads,
            timing=TimingConfig(
                warmup_s=args.warmup,
                min_time_s=args.min_time,
                min_iters=args.min_iters,
                quiet_wait_s=_quiet_wait_s(args.wait_for_quiet),
                priority=_priority(args.priority),
            ),
            results_root=args.out,
            cell_timeout_s=args.timeout,
            progress=not args.quiet,
            data_dir=args.data_dir,
            weights=args.weights,
            checkpoint=args.checkpoint,
            max_layers=args.max_layers,
            max_steps=args.max_steps,
            calibration_sizes=args.calibration_sizes,
            calibration_methods=args.calibration_methods,
            seeds=args.seeds,
            sqnr_images=args.sqnr_images,
            splits=splits,
        )
        if several:
            from bench.tune.across import print_outcome, tune_across, tuned_backends

            with captured_command() as capture:
                across = tune_across(
                    config, tuned_backends(args.backend, config), options, log, on_folder=_into_logs(capture)
                )
            return print_outcome(across, args.allow_slower)
    try:
        with captured_command() as capture:
            outcome = run_tune(config, log=log, resume=args.resume, on_folder=_into_logs(capture))
    except TuneFailed as exc:
        print(f"segbench tune: {exc}", file=sys.stderr)
        return 1
    print(f"tune: {outcome.folder}/ (sensitivity.parquet, tuning.parquet, calibration.parquet, report.html)")
    print(outcome.message)
    if outcome.met and outcome.option_line:
        print(outcome.option_line)
    if outcome.slower and not args.allow_slower:
        print(
            f"segbench tune: no configuration both meets the budgets and beats fp32 eager (exit 1; "
            f"--allow-slower accepts it): {outcome.slower}",
            file=sys.stderr,
        )
    if outcome.errors:  # a variant that failed is a failed night, even when another one met the budget
        print(f"segbench tune: {len(outcome.errors)} cell(s) ended in error (exit 1):", file=sys.stderr)
        for line in outcome.errors:
            print(f"segbench tune:   {line}", file=sys.stderr)
    slower = bool(outcome.slower) and not args.allow_slower
    return 0 if outcome.met and not outcome.errors and not slower else 1


def _progress_log(quiet: bool) -> Callable[[str], None]:
    """segbench's own progress and end-of-run lines: on the terminal, also while a run's library output is
    captured (`bench.output`); none with --quiet."""
    if quiet:
        return lambda message: None
    return lambda message: print(message, file=terminal(), flush=True)


def _into_logs(capture: OutputCapture) -> Callable[[Path], None]:
    """What a run does once its folder exists: the command's captured output goes on in its logs/."""
    return lambda folder: capture.move_to(folder / "logs" / COMMAND_LOG)


def _backend_options(items: list[str]) -> dict[str, dict[str, str]]:
    options: dict[str, dict[str, str]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        backend, dot, key = target.rpartition(".")
        if not (eq and dot and backend and key):
            raise UsageError(f"--option '{item}' is not of the form BACKEND.KEY=VALUE")
        options.setdefault(backend, {})[key] = value
    return options


def _check_nothing_but_resume(argv: list[str] | None) -> None:
    """A resumed run finishes with the settings it was started with: rows timed two ways must not share a
    results file. An option given beside --resume (even one equal to its default) would be silently
    ignored, so it is refused instead; --quiet and --fail-on change no measurement (--fail-on judges the
    rows after the run), so they are taken."""
    given = vars(build_parser(with_defaults=False).parse_args(argv))
    names: dict[str, str] = given.pop("option_names")
    judging = ("resume", "quiet", "fail_on", "budgets", "objective")  # they judge the rows, never measure them
    extra = [names[dest] for dest in given if dest in names and dest not in judging]
    if extra:
        raise UsageError(
            f"--resume finishes {given['resume']} with the settings it was started with; drop {', '.join(extra)}"
        )


def _where(items: list[str]) -> dict[str, str]:
    """`--where KEY=VALUE` options as a dict; anything else is a one-line usage error."""
    where = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--where {item!r} is not valid; expected KEY=VALUE (a node label, or resource=NAME)")
        where[key.strip()] = value.strip()
    return where


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.data.suite import split_overrides
    from bench.measure.timing import TimingConfig
    from bench.report.tables import summary_table
    from bench.results.verdict import judge_rows
    from bench.run.config import RunConfig
    from bench.run.fail_on import check_budgets, check_fail_on
    from bench.run.runner import run_benchmark

    config = RunConfig(
        suites=args.suites,
        models=args.models,
        backends=args.backends,
        device=args.device,
        threads=args.threads,
        batch_size=args.batch_size,
        results_root=args.out,
        timing=TimingConfig(
            warmup_s=args.warmup,
            min_time_s=args.min_time,
            min_iters=args.min_iters,
            mode=args.timing,
            quiet_wait_s=_quiet_wait_s(args.wait_for_quiet),
            priority=_priority(args.priority),
        ),
        cell_timeout_s=args.timeout,
        progress=not args.quiet,
        backend_options=_backend_options(args.options),
        data_dir=args.data_dir,
        weights=args.weights,
        checkpoint=args.checkpoint,
        onnx=args.onnx,
        gradcam=not args.no_gradcam,
        gradcam_layers=tuple(name for group in args.gradcam_layers for name in group),
        gradcam_method=args.gradcam_method,
        threshold=args.threshold,
        splits=split_overrides(args.splits),
        executor=args.executor,
        ray_address=args.ray_address,
        where=_where(args.where),
        per_node=args.per_node,
        shard=args.shard,
        profile=args.profile,
        profile_calls=args.profile_calls,
        budgets=tuple(args.budgets),
        objective=args.objective or "latency",
    )
    log = _progress_log(args.quiet)
    if args.resume is not None:
        from bench.run.config import load_run_config

        config = replace(load_run_config(args.resume), progress=not args.quiet)
        if args.budgets:
            config = replace(config, budgets=tuple(args.budgets))
        if args.objective:
            config = replace(config, objective=args.objective)
    bounds = check_fail_on(args.fail_on, config)  # before any work: a bad bound costs nothing
    check_budgets(config)
    with captured_command() as capture:
        run_dir = run_benchmark(config, log=log, resume=args.resume, on_folder=_into_logs(capture))
    import pandas as pd

    rows = []
    for folder in [run_dir] if (run_dir / "results.parquet").is_file() else sorted(run_dir.glob("nodes/*")):
        table = pd.read_parquet(folder / "results.parquet")
        rows += table.to_dict("records")
        print(summary_table(table))
        print(f"\nresults: {folder}/ (results.parquet, results.csv, samples.parquet, report.md, env.json)")
        print("\n".join(["", *decision_lines(folder, table)]))
    if config.shard is not None:  # on stdout, --quiet or not: an empty shard says why it measured nothing
        import json

        from bench.run.shard import describe_shard

        print(describe_shard(json.loads((run_dir / "env.json").read_text())["shard"]))
    return _verdict(judge_rows(rows, bounds), bounds)


def decision_lines(folder: Path, table: Any) -> list[str]:
    """The decision of a finished run folder, as the end of `segbench run` prints it (stdout: the answer)."""
    from bench.decide.render import terminal_lines
    from bench.report.decision import run_decision

    return terminal_lines(run_decision(folder, table))


def _verdict(verdict: RunVerdict, bounds: tuple[Bound, ...]) -> int:
    """The end of a run on stderr, --quiet or not (it is the result, not progress): the cells that ended in
    error and every --fail-on bound a row missed or could not be judged on; exit 1 on either."""
    for line in verdict.lines(bounds):
        print(f"segbench run: {line}", file=sys.stderr)
    return verdict.exit_code


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
    text = to_markdown(comparison, baseline, current, by_machine=args.by == "machine")
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if comparison.regressions else 0


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    rows: list[tuple[Any, ...]]
    if args.what == "suites":
        from bench.data.suite import get_suite, list_suites

        rows = [
            (
                n,
                (s := get_suite(n, data_dir=args.data_dir)).source,
                len(s.classes),
                "x".join(map(str, s.input_size)),
                s.data_status(),
                s.description,
            )
            for n in list_suites()
        ]
        print(tabulate(rows, headers=["suite", "source", "classes", "input (HxW)", "data", "description"]))
    elif args.what == "models":
        from bench.models import create_model, list_models

        rows = []
        for name in list_models():
            model = create_model(name, 3, 2)
            layers = getattr(model, "gradcam_layers", {})
            rows.append(
                (
                    name,
                    f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
                    getattr(model, "gradcam_layer", ""),
                    ", ".join(f"{k}={v}" for k, v in layers.items()),
                )
            )
        print(tabulate(rows, headers=["model", "parameters (3 in, 2 classes)", "grad-cam layer", "other layers"]))
    else:
        from bench.backend import get_backend, list_backends

        rows = []
        for name in list_backends():
            try:
                backend = get_backend(name)
                status = backend.unavailable_reason("cpu")
                rows.append(
                    (
                        name,
                        ",".join(backend.precisions),
                        ",".join(backend.devices),
                        "available" if status is None else f"unavailable: {status}",
                    )
                )
            except UsageError as exc:
                rows.append((name, "", "", f"unavailable: {exc}"))
        print(tabulate(rows, headers=["backend", "precisions", "devices", "on this machine (cpu)"]))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.data.suite import get_suite, split_overrides
    from bench.models import get_model_entry
    from bench.training.checkpoints import ensure_checkpoint, export_checkpoint, load_checkpoint
    from bench.training.recipes import suite_recipe

    suite = get_suite(args.suite, data_dir=args.data_dir, splits=split_overrides(args.splits))
    get_model_entry(args.model)
    recipe_name, recipe = suite_recipe(args.model, suite)
    path = ensure_checkpoint(args.model, suite, recipe, force=args.force, recipe_name=recipe_name)
    _, meta = load_checkpoint(args.model, suite, path)
    print(f"checkpoint: {path}")
    if args.export is not None:
        digest = export_checkpoint(path, args.export)
        print(
            f"exported to {args.export} (digest {digest}); on another machine: segbench run --model {args.model} "
            f"--suite {args.suite} --checkpoint {args.export}"
        )
    print(
        f"evaluation dice {meta['evaluation_dice']:.4f}, mIoU {meta['evaluation_miou']:.4f}, "
        f"trained in {meta['train_seconds']} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "tune": _cmd_tune,
        "list": _cmd_list,
        "train": _cmd_train,
        "report": _cmd_report,
        "compare": _cmd_compare,
        "export": _cmd_export,
        "history": _cmd_history,
        "merge": _cmd_merge,
    }
    try:
        if args.command == "run" and args.resume is not None:
            _check_nothing_but_resume(argv)
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
