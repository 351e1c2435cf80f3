"""`segbench run`: its options, and the end of a run (the summary, the decision, the --fail-on verdict)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.backend import GRADCAM_CHOICES
from bench.cli.options import (
    _add_config,
    _add_data,
    _backend_options,
    _data_group,
    _input_sizes,
    _into_logs,
    _names,
    _output_group,
    _positive_float,
    _precision,
    _precision_pct,
    _shard,
    _shared_settings,
    _sizes,
    _timing_group,
    _where,
    examples,
)
from bench.decide.decision import OBJECTIVES
from bench.errors import UsageError
from bench.measure.scenarios import DEFAULT_BATCH_SIZES, DEFAULT_DURATION_S, SCENARIOS, SINGLE_STREAM
from bench.measure.timing import PRECISION_TIMING_FACTOR, TIMING_MODES
from bench.output.capture import captured_command
from bench.output.terminal import logger, progress
from bench.run.config import DEVICES, EXECUTORS

if TYPE_CHECKING:
    from bench.results.bounds import Bound
    from bench.results.verdict import RunVerdict
    from bench.run.config import RunConfig


def add_run_parser(sub: Any, threads: int) -> None:
    """The `run` subcommand, its options in groups."""
    from bench.run.config import DEFAULT_BACKENDS, DEFAULT_MODELS, DEFAULT_SUITE

    run = sub.add_parser(
        "run",
        help="run the benchmark matrix and write results/<run-id>/",
        description="Time, score and explain every (suite, model, backend) cell; write results/<run-id>/.",
        epilog=examples(
            "segbench run --models unet --backends torch-eager,ort-qdq-int8 --no-gradcam",
            'segbench run --quiet --fail-on "speedup_vs_fp32>=1" --budget "miou_drift>=-0.01"',
            "segbench run --config nightly.toml --backends torch-eager,openvino-int8",
            "segbench run --resume results/latest",
        ),
    )
    what = run.add_argument_group("what to run")
    _add_config(what, "run")
    what.add_argument(
        "--suite",
        "--suites",
        dest="suites",
        type=_names,
        default=(DEFAULT_SUITE,),
        help=f"suite name(s), comma-separated (default {DEFAULT_SUITE})",
    )
    what.add_argument(
        "--models",
        "--model",
        dest="models",
        type=_names,
        default=DEFAULT_MODELS,
        help="model names, comma-separated, or your own model as package.module:factory "
        "(a callable returning an nn.Module) or hf:PATH (a local Hugging Face folder, with its weights)",
    )
    what.add_argument(
        "--backends",
        type=_names,
        default=DEFAULT_BACKENDS,
        help="backends, comma-separated; NAME or NAME:PRECISION (e.g. torch-eager:bf16); "
        "default: every registered backend",
    )
    what.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="BACKEND.KEY=VALUE",
        help="backend option, repeatable (e.g. ort-qdq-int8.calibration=entropy)",
    )
    data = _data_group(run)
    data.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="state dict for the (one) model, loaded with weights_only=True; default: train the reference",
    )
    data.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="the reference checkpoint of the (one) model, from segbench train --export: the same float model "
        "on every machine of a hardware comparison",
    )
    data.add_argument(
        "--onnx",
        type=Path,
        metavar="FILE",
        help="your fp32 ONNX file of the (one) model, used by the ONNX-based backends instead of an export",
    )
    _add_data(data)
    data.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="foreground probability threshold of a single-output (sigmoid) binary model",
    )
    gradcam = run.add_argument_group("Grad-CAM")
    gradcam.add_argument(
        "--gradcam-layer",
        dest="gradcam_layers",
        action="append",
        type=_names,
        default=[],
        metavar="LAYER",
        help="Grad-CAM feature layer(s), module paths, repeatable or comma-separated "
        "(default: each model's documented layer)",
    )
    gradcam.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM stage")
    gradcam.add_argument(
        "--gradcam-method",
        choices=tuple(GRADCAM_CHOICES),
        default="both",
        help="quantized backends' Grad-CAM: finite differences on the artifact's own head (fd), autograd "
        "through its fake-quant simulation (fakequant), or both (default; fd fills the main columns)",
    )
    timing = _timing_group(run, threads, "cell", "cell", " for every backend")
    timing.add_argument("--batch-size", type=int, default=1, help="images per timed call")
    timing.add_argument(
        "--timing",
        choices=TIMING_MODES,
        default="interleaved",
        help="interleaved (default): the backends of one suite and model are timed in alternating rounds, so "
        "load on the machine hits them alike; sequential: one backend after the other",
    )
    timing.add_argument(
        "--speedup-precision",
        type=_precision_pct,
        metavar="PCT",
        help="interleaved: time on past the minimum until every row's speedup 95%% interval lies within PCT%% "
        f"of it (at most {PRECISION_TIMING_FACTOR}x the cycles the minimum took; the log names rows that fell "
        "short); default: the minimum only",
    )
    sweep = run.add_argument_group("shape sweep (docs/sweeps.md)")
    sweep.add_argument(
        "--input-sizes",
        type=_input_sizes,
        default=(),
        metavar="HxW,HxW",
        help="time every backend at each of these input sizes too (each size its own comparison group, built "
        "and calibrated at that size); quality and Grad-CAM are measured at the suite's own size, which is "
        "always in the sweep",
    )
    sweep.add_argument(
        "--batch-sizes",
        type=_sizes,
        default=(),
        metavar="N,N",
        help="time every backend at each of these batch sizes (each its own comparison group); replaces --batch-size",
    )
    scenario = run.add_argument_group("scenario (docs/scenarios.md)")
    scenario.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=SINGLE_STREAM,
        help="single-stream (default): one batch at a time, the latency columns; offline: also the best sustained "
        "images/s of each backend over batch sizes and its runtime's own throughput settings (offline_*); "
        "server: also the highest Poisson arrival rate whose p99 latency, queueing included, stays under "
        "--latency-bound (server_*)",
    )
    scenario.add_argument(
        "--latency-bound",
        type=_positive_float,
        metavar="MS",
        help="--scenario server: the p99 latency in ms the rate found must keep under (required with it)",
    )
    scenario.add_argument(
        "--scenario-time",
        type=_positive_float,
        default=DEFAULT_DURATION_S,
        metavar="SECONDS",
        help="seconds of each offline setting and each server probe (a probe has at least 100 queries)",
    )
    scenario.add_argument(
        "--offline-batch-sizes",
        type=_sizes,
        default=DEFAULT_BATCH_SIZES,
        metavar="N,N",
        help="--scenario offline: the batch sizes every backend's settings are tried at",
    )
    profiling = run.add_argument_group("profiling")
    profiling.add_argument(
        "--profile",
        action="store_true",
        help="after timing, a profiled pass of every cell with its runtime's own profiler: time per operator, "
        "layer and precision in profile.parquet, attributed in the report (never in the latency columns)",
    )
    profiling.add_argument(
        "--profile-calls",
        type=int,
        default=20,
        metavar="N",
        help="calls in each cell's profiled pass (default 20)",
    )
    decision = run.add_argument_group("decision and bounds")
    decision.add_argument(
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
    decision.add_argument(
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
    decision.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help="what the decision ranks the cells meeting every budget on (default latency: the same-run "
        "speedup, ties within noise broken by quality, then size, then memory)",
    )
    where = run.add_argument_group("where it runs")
    where.add_argument("--device", choices=DEVICES, default="cpu", help="where the backends run")
    where.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local (default) or ray: every (suite, model) group a task on a Ray node with a segbench slot",
    )
    where.add_argument(
        "--address", dest="ray_address", metavar="ADDR", help="the Ray cluster (default auto; local: start one here)"
    )
    where.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Ray nodes to use: a node label (ray start --labels KEY=VALUE) or resource=NAME (repeatable)",
    )
    where.add_argument(
        "--per-node", action="store_true", help="with --executor ray: the whole matrix once on every matching node"
    )
    where.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="measure part K of N of the matrix (whole comparison groups, dealt by a hash of each group's "
        "identity), for one job of a CI job matrix; segbench merge joins the parts' folders",
    )
    output = _output_group(run)
    output.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="finish an interrupted run in DIR without recomputing its finished cells, with the settings it "
        "was started with (only --quiet, --verbose, --fail-on, --budget and --objective may be added: they judge, they "
        "do not measure)",
    )


def check_nothing_but_resume(args: argparse.Namespace, given: list[str], run: argparse.ArgumentParser) -> None:
    """A resumed run finishes with the settings it was started with: rows timed two ways must not share a
    results file. An option given beside --resume (even one equal to its default) would be silently
    ignored, so it is refused instead; --quiet, --verbose and --fail-on change no measurement (--fail-on
    judges the rows after the run), so they are taken. `given`: the dests the command line named
    (bench.cli.config_file.given_on_command_line), `run` the run command's parser (their flags)."""
    names = {a.dest: a.option_strings[0] for a in run._actions if a.option_strings}
    judging = ("resume", "quiet", "verbose", "fail_on", "budgets", "objective")  # they judge or talk, never measure
    extra = [names[dest] for dest in given if dest in names and dest not in judging]
    if extra:
        raise UsageError(
            f"--resume finishes {args.resume} with the settings it was started with; drop {', '.join(extra)}"
        )


def run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of a run's options (settled: bench.cli.app.settled); the Python API builds its run here too."""
    from bench.measure.scenarios import ScenarioConfig
    from bench.run.config import RunConfig, parse_input_size

    return RunConfig(
        **_shared_settings(args, args.batch_size, mode=args.timing, speedup_precision=_precision(args)).fields(),
        suites=args.suites,
        models=args.models,
        backends=args.backends,
        device=args.device,
        backend_options=_backend_options(args.options),
        onnx=args.onnx,
        gradcam=not args.no_gradcam,
        gradcam_layers=tuple(name for group in args.gradcam_layers for name in group),
        gradcam_method=args.gradcam_method,
        threshold=args.threshold,
        executor=args.executor,
        ray_address=args.ray_address,
        where=_where(args.where),
        per_node=args.per_node,
        shard=args.shard,
        profile=args.profile,
        profile_calls=args.profile_calls,
        budgets=tuple(args.budgets),
        objective=args.objective or "latency",
        scenario=ScenarioConfig(args.scenario, args.latency_bound, args.scenario_time, tuple(args.offline_batch_sizes)),
        input_sizes=tuple(parse_input_size(text) for text in args.input_sizes),
        batch_sizes=tuple(args.batch_sizes),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.report.tables import summary_table
    from bench.results.verdict import judge_rows
    from bench.run.fail_on import check_budgets, check_fail_on
    from bench.run.runner import run_benchmark

    config = run_config(args)
    log = progress
    if args.resume is not None:
        from bench.run.config import load_run_config

        config = replace(load_run_config(args.resume), progress=not args.quiet)
        if args.budgets:
            config = replace(config, budgets=tuple(args.budgets))
        if args.objective:
            config = replace(config, objective=args.objective)
    logger.debug("segbench run: %s", config)  # --verbose: every setting, the defaults resolved
    bounds = check_fail_on(args.fail_on, config)  # before any work: a bad bound costs nothing
    check_budgets(config)
    with captured_command() as capture:
        run_dir = run_benchmark(config, log=log, resume=args.resume, on_folder=_into_logs(capture, args))
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
