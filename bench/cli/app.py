"""The `segbench` parser, and main: one handler per command; a library UsageError is one line and exit 2."""

from __future__ import annotations

import argparse
import sys

from bench import __version__
from bench.cli.models import _cmd_list, _cmd_train, add_models_parsers
from bench.cli.options import EXIT_USAGE, _Parser, examples
from bench.cli.results import (
    _cmd_compare,
    _cmd_export,
    _cmd_history,
    _cmd_merge,
    _cmd_report,
    add_results_parsers,
)
from bench.cli.run import _check_nothing_but_resume, _cmd_run, add_run_parser
from bench.cli.tune import _cmd_tune, add_tune_parser
from bench.errors import UsageError
from bench.output.terminal import verbosity


def build_parser(with_defaults: bool = True) -> argparse.ArgumentParser:
    """The command line; `with_defaults=False` leaves the run options that were not given out of the
    namespace (how a resume finds the options it must refuse)."""
    from bench.environment import default_threads

    parser = _Parser(
        prog="segbench",
        description="Benchmark segmentation models across quantization backends.",
        epilog=examples(
            "segbench run --models unet --backends torch-eager,ort-qdq-int8",
            "segbench compare results/baseline results/latest",
            "segbench <command> --help  # its options in groups, their defaults and examples",
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"segbench {__version__}", help="print segbench's version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    threads = default_threads()
    add_run_parser(sub, threads, with_defaults)
    add_tune_parser(sub, threads)
    add_results_parsers(sub)  # merge, report, compare, export, history
    add_models_parsers(sub)  # list, train
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch to the command's handler, and turn a library UsageError into one line and exit 2."""
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
            _check_nothing_but_resume(argv, build_parser(with_defaults=False))
        # progress goes through the `segbench` logger: --quiet and --verbose (run, tune) set its level
        with verbosity(getattr(args, "quiet", False), getattr(args, "verbose", False)):
            return handlers[args.command](args)
    except UsageError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
