"""`segbench tune`: its options, and what a tune (or a tune across several backends) prints and exits with."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli.options import (
    _add_config,
    _add_data,
    _backend_options,
    _data_group,
    _into_logs,
    _names,
    _output_group,
    _shared_settings,
    _sizes,
    _timing_group,
    examples,
)
from bench.errors import UsageError
from bench.output.capture import captured_command
from bench.output.terminal import logger, progress

if TYPE_CHECKING:
    from bench.tune.config import TuneConfig


def add_tune_parser(sub: Any, threads: int) -> None:
    """The `tune` subcommand, its options in groups (timing, data and output shared with run)."""
    tune = sub.add_parser(
        "tune",
        help="which layers break int8 (sensitivity), the fastest mixed-precision model within a quality budget, "
        "and how calibration size and method matter; writes results/tune-<id>/",
        epilog=examples(
            'segbench tune --suite synthetic-nuclei --model unet --backend torch-fx-int8 --budget "miou_drift>=-0.005"',
            'segbench tune --suite synthetic-nuclei --model unet --backend all --budget "miou_drift>=-0.01"',
            "segbench tune --resume results/tune-<id>",
        ),
    )
    what = tune.add_argument_group("what to tune")
    _add_config(what, "tune")
    what.add_argument("--suite", help="the suite (it needs a tuning split: tuning = N under [splits])")
    what.add_argument("--model", help="the model (a zoo name or package.module:factory)")
    what.add_argument(
        "--backend",
        help="the int8 backend to tune, e.g. torch-fx-int8; several (a,b,c) or all: each tuned, then the tuned "
        "configurations run together with fp32 eager and decided under the budgets (bench/tune/across.py)",
    )
    what.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="BACKEND.KEY=VALUE",
        help="the tuned backend's other options, repeatable (its float_layers is what tune chooses)",
    )
    budget = tune.add_argument_group("budget and search")
    budget.add_argument(
        "--budget",
        dest="budgets",
        action="append",
        default=[],
        metavar="COLUMN>=X",
        help="quality budget on the tuning split, repeatable: any quality, drift, agreement, per-class, boundary, "
        "SQNR or Grad-CAM column (e.g. miou_drift>=-0.005, min_class_iou_drift>=-0.02, gradcam_pearson>=0.95); "
        "the first ranks the layers",
    )
    budget.add_argument(
        "--allow-slower",
        action="store_true",
        help="exit 0 when the configuration that meets the budgets is slower than fp32 eager (by default that "
        "is exit 1: quantizing does not pay)",
    )
    budget.add_argument(
        "--max-layers", type=int, help="measure the N layers of lowest SQNR only (default: every layer)"
    )
    budget.add_argument(
        "--max-steps", type=int, help="give up after N layers in float (default: every layer that helped)"
    )
    budget.add_argument(
        "--sqnr-images", type=int, default=4, help="tuning images the layer SQNR proxy runs on (default 4)"
    )
    calibration = tune.add_argument_group("calibration study")
    calibration.add_argument(
        "--calibration-sizes",
        type=_sizes,
        default=(),
        metavar="N,N,...",
        help="calibration study: image counts, drawn from the calibration and training splits",
    )
    calibration.add_argument(
        "--calibration-methods",
        type=_names,
        default=(),
        metavar="M,M,...",
        help="calibration study: the backend's calibration option values (e.g. minmax,entropy,percentile)",
    )
    calibration.add_argument(
        "--seeds", type=int, default=1, help="calibration study: draws per size and method (default 1)"
    )
    data = _data_group(tune)
    data.add_argument("--weights", type=Path, metavar="FILE", help="state dict of the model (default: the reference)")
    data.add_argument(
        "--checkpoint", type=Path, metavar="FILE", help="reference checkpoint from segbench train --export"
    )
    _add_data(data)
    _timing_group(tune, threads, "step", "variant")
    output = _output_group(tune)
    output.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="finish an interrupted tune in DIR with the settings it was started with",
    )


def several_backends(backend: str) -> bool:
    """`--backend a,b` or `all`: each tuned, then decided together (bench.tune.across)."""
    return "," in backend or backend == "all"  # bench.tune.across.ALL


def tune_config(args: argparse.Namespace) -> TuneConfig:
    """The TuneConfig of a new tune's options (settled: bench.cli.app.settled); the Python API's too."""
    from bench.tune.config import TuneConfig

    missing = [
        flag
        for flag, value in (("--suite", args.suite), ("--model", args.model), ("--backend", args.backend))
        if not value
    ]
    if missing:
        raise UsageError(f"segbench tune needs {', '.join(missing)}")
    options = _backend_options(args.options)
    name = args.backend.partition(":")[0]
    if not several_backends(args.backend) and (other := sorted(set(options) - {name})):
        raise UsageError(f"--option names backend '{other[0]}'; tune takes options of --backend {name} only")
    return TuneConfig(
        suite=args.suite,
        model=args.model,
        backend=args.backend,
        budgets=tuple(args.budgets),
        backend_options=options.get(name, {}),
        shared=_shared_settings(args),
        max_layers=args.max_layers,
        max_steps=args.max_steps,
        calibration_sizes=args.calibration_sizes,
        calibration_methods=args.calibration_methods,
        seeds=args.seeds,
        sqnr_images=args.sqnr_images,
    )


def _cmd_tune(args: argparse.Namespace) -> int:
    from bench.tune.config import load_tune_config
    from bench.tune.runner import run_tune
    from bench.tune.sensitivity import TuneFailed

    log = progress
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
                ("--config", args.config),
            )
            if value
        ]
        if given:
            raise UsageError(
                f"--resume finishes {args.resume} with the settings it was started with; drop {', '.join(given)}"
            )
        config = load_tune_config(args.resume)
        config = replace(config, shared=replace(config.shared, progress=not args.quiet))
    else:
        config = tune_config(args)
        if several_backends(args.backend):
            from bench.tune.across import print_outcome, tune_across, tuned_backends

            with captured_command() as capture:
                across = tune_across(
                    config,
                    tuned_backends(args.backend, config),
                    _backend_options(args.options),
                    log,
                    on_folder=_into_logs(capture, args),
                )
            return print_outcome(across, args.allow_slower)
    logger.debug("segbench tune: %s", config)  # --verbose: every setting, the defaults resolved
    try:
        with captured_command() as capture:
            outcome = run_tune(config, log=log, resume=args.resume, on_folder=_into_logs(capture, args))
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
