"""What more than one command parses: value types, the shared options and option groups, and the
defaults that come from the environment (--wait-for-quiet, --priority).

Where `run` and `tune` take the same option with the same help and default it is added here, once;
where the wording differs (a run times cells, a tune steps and variants) the helper takes the word.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bench.errors import UsageError
from bench.measure.priority import DEFAULT_PRIORITY, PRIORITIES
from bench.output.capture import COMMAND_LOG, OutputCapture

if TYPE_CHECKING:
    from bench.measure.timing import TimingConfig
    from bench.run.settings import SharedSettings

EXIT_USAGE = 2
Group = argparse._ArgumentGroup  # an option group: where the options of one kind are added


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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (the examples keep their lines), and each option's default
    appended where it says something: not None, False or empty, and not already named in the help text."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or (isinstance(default, list | tuple) and not default)
            or "default" in text.lower()
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def examples(*lines: str) -> str:
    """A command's help epilog: a few command lines that show what it is for."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class _Parser(argparse.ArgumentParser):
    """Every segbench parser: usage errors as one line and exit 2, help through `_HelpFormatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

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


def _precision_pct(value: str) -> float:
    """--speedup-precision: a percentage over 0 and under 100."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if not 0 < number < 100:
        raise argparse.ArgumentTypeError(f"'{value}' must be a percentage over 0 and under 100, e.g. 5")
    return number


def _round_count(value: str) -> int:
    """--rounds: a whole number of at least 2 (one round would leave the cycles nothing to pair)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if number < 2:
        raise argparse.ArgumentTypeError(f"'{value}' must be at least 2")
    return number


def _rounds(args: argparse.Namespace, default: int) -> int:
    """--rounds, else `default` (TimingConfig's); like --speedup-precision, only interleaved timing has rounds
    to split the minimum into."""
    if args.rounds is None:
        return default
    mode = getattr(args, "timing", "interleaved")  # tune has no --timing: it always interleaves
    if mode != "interleaved":
        raise UsageError(
            f"--rounds {args.rounds}: --timing {mode} times each backend in one round; use --timing interleaved"
        )
    return int(args.rounds)


def _precision(args: argparse.Namespace) -> float | None:
    """--speedup-precision as a share; only interleaved timing has the cycles whose pairs it narrows."""
    pct = args.speedup_precision
    if pct is None:
        return None
    if args.timing != "interleaved":
        raise UsageError(
            f"--speedup-precision {pct:g}: --timing {args.timing} times each backend apart, with no cycles to "
            "pair; use --timing interleaved"
        )
    return pct / 100


_ROUNDS_HELP = (
    "interleaved: how many rounds each {per}'s minimum time and count are split into, one per cycle (default "
    "10); more, shorter rounds pair more cycles in the same timed seconds, which narrows the speedups' "
    "intervals on a host whose speed moves between rounds (docs/timing.md)"
)
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


def _add_split(parser: argparse.ArgumentParser | Group) -> None:
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


def _input_sizes(value: str) -> tuple[str, ...]:
    """`256x256,512x1024`: each HxW kept as its text (a run's config.toml writes it back as given); the
    sizes themselves are `bench.run.config.parse_input_size`'s."""
    from bench.run.config import parse_input_size

    texts = tuple(_names(value))
    for text in texts:
        try:
            parse_input_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"'{value}': {exc}") from None
    if not texts:
        raise argparse.ArgumentTypeError(f"'{value}': expected one or more sizes HxW, e.g. 256x256,512x512")
    return texts


# The option groups run and tune share, defined once. Each returns its group, so that a command adds its
# own options of that kind to it (run's --batch-size and --timing to "timing", its --onnx to "data and
# model"); `per` and `for_what` carry the words that differ.


def _data_group(parser: argparse.ArgumentParser) -> Group:
    """ "data and model": the command adds its model options (--weights, --checkpoint), then `_add_data`."""
    return parser.add_argument_group("data and model")


def _add_data(group: Group) -> None:
    """--data-dir and --split, the data options run and tune share."""
    group.add_argument("--data-dir", type=Path, metavar="DIR", help="the suite's data folder (real-data suites)")
    _add_split(group)


def _timing_group(
    parser: argparse.ArgumentParser, threads: int, per: str, timeout_per: str, for_what: str = ""
) -> Group:
    """ "timing": --threads (defaulting to the physical cores, `bench.environment.default_threads`, found
    once by the caller), --min-time, --min-iters, --warmup, --rounds, --wait-for-quiet, --priority and --timeout;
    `per` is what one timing is of (run: cell, tune: step), `timeout_per` what --timeout bounds (run: cell,
    tune: variant), `for_what` run's " for every backend".

    --wait-for-quiet and --priority have no default in the namespace, so that the environment's default is
    read when the command runs (`_quiet_wait_s`, `_priority`), not when the parser is built."""
    group = parser.add_argument_group("timing")
    group.add_argument(
        "--threads", type=int, default=threads, help=f"intra-op threads{for_what} (default: physical cores)"
    )
    group.add_argument("--min-time", type=_positive_float, default=3.0, help=f"minimum timed seconds per {per}")
    group.add_argument("--min-iters", type=int, default=30, help=f"minimum timed iterations per {per}")
    group.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (at least 5 calls)")
    group.add_argument("--rounds", type=_round_count, metavar="N", help=_ROUNDS_HELP.format(per=per))
    group.add_argument("--wait-for-quiet", type=_non_negative_float, metavar="SECONDS", help=_QUIET_WAIT_HELP)
    group.add_argument("--priority", choices=PRIORITIES, help=_PRIORITY_HELP)
    group.add_argument("--timeout", type=_positive_float, default=1800.0, help=f"per-{timeout_per} timeout in seconds")
    return group


def _add_config(group: Group, command: str) -> None:
    """--config: the command's options from a TOML file (bench/cli/config_file.py)."""
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE.toml",
        help=f"{command}'s options from a TOML file, one key per option without its dashes (min-time = 0.2, "
        'backends = ["torch-eager", "ort-qdq-int8"], no-gradcam = true); options given here win; a finished '
        "folder's config.toml runs the same settings again",
    )


def _output_group(parser: argparse.ArgumentParser) -> Group:
    """ "output": --out, and how much progress reaches the terminal (the `segbench` logger's level,
    `bench.output.terminal.verbosity`); the command adds --resume."""
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results/)")
    chatter = group.add_mutually_exclusive_group()
    chatter.add_argument(
        "--quiet", action="store_true", help="no progress output (the segbench logger at WARNING); results still print"
    )
    chatter.add_argument(
        "--verbose", action="store_true", help="also segbench's debug lines, e.g. the settings the command resolved"
    )
    return group


def _timing(args: argparse.Namespace, **more: Any) -> TimingConfig:
    """The TimingConfig of the shared timing options (`more`: run's --timing mode)."""
    from bench.measure.timing import TimingConfig

    return TimingConfig(
        warmup_s=args.warmup,
        min_time_s=args.min_time,
        min_iters=args.min_iters,
        **more,
        quiet_wait_s=_quiet_wait_s(args.wait_for_quiet),
        priority=_priority(args.priority),
        rounds=_rounds(args, TimingConfig.rounds),
    )


def _shared_settings(args: argparse.Namespace, batch_size: int = 1, **timing: Any) -> SharedSettings:
    """What run and tune both take, built once from the options both add (above): run passes its
    --batch-size and its --timing mode (`timing`); tune has neither (batch 1, interleaved)."""
    from bench.data.suite import split_overrides
    from bench.run.settings import SharedSettings

    return SharedSettings(
        threads=args.threads,
        batch_size=batch_size,
        timing=_timing(args, **timing),
        results_root=args.out,
        cell_timeout_s=args.timeout,
        progress=not args.quiet,
        data_dir=args.data_dir,
        weights=args.weights,
        checkpoint=args.checkpoint,
        splits=split_overrides(args.splits),
    )


def _into_logs(capture: OutputCapture, args: argparse.Namespace | None = None) -> Callable[[Path], None]:
    """What a run does once its folder exists: the command's captured output goes on in its logs/, and a
    new (not resumed) run or tune writes the settings it resolved (`args.config_text`, bench.cli.app.settled)
    as config.toml, which `--config` accepts back."""
    from bench.cache import atomic_write_bytes
    from bench.cli.config_file import CONFIG_FILE

    def on_folder(folder: Path) -> None:
        text = getattr(args, "config_text", None)
        if text is not None:
            atomic_write_bytes(folder / CONFIG_FILE, text.encode())
        capture.move_to(folder / "logs" / COMMAND_LOG)

    return on_folder


def _backend_options(items: list[str]) -> dict[str, dict[str, str]]:
    options: dict[str, dict[str, str]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        backend, dot, key = target.rpartition(".")
        if not (eq and dot and backend and key):
            raise UsageError(f"--option '{item}' is not of the form BACKEND.KEY=VALUE")
        options.setdefault(backend, {})[key] = value
    return options


def _where(items: list[str]) -> dict[str, str]:
    """`--where KEY=VALUE` options as a dict; anything else is a one-line usage error."""
    where = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--where {item!r} is not valid; expected KEY=VALUE (a node label, or resource=NAME)")
        where[key.strip()] = value.strip()
    return where
