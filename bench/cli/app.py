"""The `segbench` parser, and main: one handler per command; a library UsageError is one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from typing import Any

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
from bench.cli.run import _cmd_run, add_run_parser, check_nothing_but_resume
from bench.cli.tune import _cmd_tune, add_tune_parser
from bench.errors import UsageError
from bench.output.terminal import verbosity


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
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
    add_run_parser(sub, threads)
    add_tune_parser(sub, threads)
    add_results_parsers(sub)  # merge, report, compare, export, history
    add_models_parsers(sub)  # list, train
    return parser


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The subcommand's own parser (its options: what a config file's keys are checked against)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def settled(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    given: Iterable[str],
    settings: Mapping[str, Any] | None = None,
    source: str = "",
) -> argparse.Namespace:
    """A run's or tune's options as they will be used: `--config`'s file (the options in `given` win over
    it), then `settings` (the Python API's keyword arguments, named `source` in errors) over both; the
    environment's defaults of --wait-for-quiet and --priority read; and `config_text`, the resolved
    settings as the config.toml written into the folder (bench/cli/config_file.py)."""
    from bench.cli.config_file import read_config_file, resolve_settings, resolved_config
    from bench.cli.options import _priority, _quiet_wait_s

    command = command_parser(parser, args.command)
    if args.config is not None:
        args = resolve_settings(command, args, read_config_file(args.config), f"--config {args.config}", given)
    if settings:
        args = resolve_settings(command, args, settings, source)
    args.wait_for_quiet = _quiet_wait_s(args.wait_for_quiet)
    args.priority = _priority(args.priority)
    args.config_text = resolved_config(command, args, keep_relative=("out",))
    return args


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch to the command's handler, and turn a library UsageError into one line and exit 2."""
    from bench.cli.config_file import given_on_command_line

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
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
        if args.command in ("run", "tune"):  # which options the command line named: --config yields to them
            command = command_parser(parser, args.command)
            given = given_on_command_line(command, argv[argv.index(args.command) + 1 :])
            if args.resume is not None and args.command == "run":
                check_nothing_but_resume(args, given, command)
            if args.resume is None:
                args = settled(parser, args, given)
        # progress goes through the `segbench` logger: --quiet and --verbose (run, tune) set its level
        with verbosity(getattr(args, "quiet", False), getattr(args, "verbose", False)):
            return handlers[args.command](args)
    except UsageError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
