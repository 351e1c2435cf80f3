"""`--config FILE.toml` for run and tune: a reviewed file of option values instead of a line of flags.

Why keys are the options themselves (`min-time = 0.2`, `backends = ["torch-eager", "ort-qdq-int8"]`) and
not a schema of their own: a nightly matrix moves between the command line, a file and the Python API
(`segbench.run(min_time=0.2)`) without translation, and every value goes through the same argparse `type`
and `choices` as the flag, so a file accepts exactly what the command line accepts and says no the same
way (one line naming the file and the key, exit 2, before anything is measured).

Order of precedence: an option's default, then the file, then the command line (a flag given there
replaces the file's value, a repeatable one its whole list). After the settings are resolved, the command
writes them all into its folder as `config.toml` (`resolved_config`), and `--config` accepts that file back:
the same matrix, the same settings, a new run.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.errors import UsageError

CONFIG_FILE = "config.toml"  # the resolved settings, in every run and tune folder
# options that are not settings of the run: where a finished run is (resume), the file itself, the help
NOT_SETTINGS = frozenset({"config", "resume", "help"})
TALK = frozenset({"quiet", "verbose"})  # how much a command says: a file may set them, config.toml leaves them out
# what a value of the file may be, per TOML type, to be written back as the flag's text
Scalar = str | int | float | bool


def settings_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each option of a command by its key: the long flag without its dashes (`--min-time` -> `min-time`)."""
    actions = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in NOT_SETTINGS:
            long = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
            actions[long.lstrip("-")] = action
    return actions


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML file's table; a missing or malformed file is one line naming it."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file; expected a TOML file of option = value lines") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--config {path}: not a TOML file ({exc})") from None


def _flag_texts(value: Any, repeatable: bool) -> list[str]:
    """The command-line text(s) a file value stands for: a list joins with commas (`_names`, `_sizes`) or,
    for a repeatable option, is one flag per item; a table is KEY=VALUE items (`split = {train = 8}`,
    `option = {ort-qdq-int8 = {calibration = "entropy"}}` -> `ort-qdq-int8.calibration=entropy`); a path
    (the Python API's `out=Path(...)`) is its text."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, Mapping):
        if not repeatable:
            raise ValueError("expected a value, not a table")
        return [f"{name}={text}" for name, text in _flat(value)]
    if isinstance(value, list | tuple):
        value = [os.fspath(item) if isinstance(item, os.PathLike) else item for item in value]
        if not all(isinstance(item, Scalar) for item in value):
            raise ValueError("expected a list of strings or numbers")
        texts = [_scalar_text(item) for item in value]
        return texts if repeatable else [",".join(texts)]
    if isinstance(value, Scalar):
        return [_scalar_text(value)]
    raise ValueError(f"expected a string, number or list, not {type(value).__name__}")


def _flat(table: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flat(value, f"{name}.")
        else:
            yield name, _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def convert(action: argparse.Action, key: str, value: Any, source: str) -> Any:
    """A file's (or an API caller's) value for one option, as argparse would have stored the flag's, or a
    one-line UsageError naming `source` and the key."""

    def refuse(why: str) -> UsageError:
        return UsageError(f"{source}: key '{key}': {why}")

    if action.nargs == 0:  # a switch (--no-gradcam, --profile, --quiet)
        if not isinstance(value, bool):
            raise refuse(f"expected true or false, not {value!r}")
        return action.const if value else action.default
    repeatable = isinstance(action, argparse._AppendAction)
    try:
        texts = _flag_texts(value, repeatable)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    values = []
    for text in texts:
        try:
            typed = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, UsageError) as exc:
            raise refuse(str(exc)) from None
        except (ValueError, TypeError) as exc:
            kind = {int: "an integer", float: "a number"}.get(action.type)  # type: ignore[call-overload]
            raise refuse(f"'{text}' is not {kind}" if kind else str(exc) or f"'{text}' is not valid") from None
        if action.choices is not None and typed not in action.choices:
            raise refuse(f"'{text}' is not one of {', '.join(map(str, action.choices))}")
        values.append(typed)
    return values if repeatable else values[0]


def resolve_settings(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    settings: Mapping[str, Any],
    source: str,
    given: Iterable[str] = (),
) -> argparse.Namespace:
    """`args` with every key of `settings` converted and set, except the options in `given` (their dests:
    the command line named them, and it wins). Keys may use underscores for dashes (`min_time`), so that
    the Python API's keyword arguments and the file's keys are the same names."""
    actions = settings_actions(parser)
    by_dest = {action.dest: key for key, action in actions.items()}
    resolved = argparse.Namespace(**vars(args))
    for raw_key, value in settings.items():
        key = raw_key.replace("_", "-")
        if key not in actions and raw_key in by_dest:  # a dest spelled like the API's name (fail_on, budgets)
            key = by_dest[raw_key]
        action = actions.get(key)
        if action is None:
            if key in NOT_SETTINGS or raw_key in NOT_SETTINGS:
                raise UsageError(f"{source}: key '{raw_key}' is not a setting a file can hold")
            close = difflib.get_close_matches(key, actions, n=1)
            api = source.endswith("()")  # the Python API's keyword arguments take underscores
            spelled = close[0].replace("-", "_") if close and api else close[0] if close else ""
            hint = f"; did you mean '{spelled}'?" if close else f"; expected one of the {parser.prog} options"
            raise UsageError(f"{source}: unknown key '{raw_key}'{hint}")
        if action.dest in given:
            continue
        setattr(resolved, action.dest, convert(action, raw_key, value, source))
    return resolved


def given_on_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The dests of the options `argv` names, whatever their values, in the order it names them: a parse
    with every default suppressed leaves only those in the namespace."""
    suppressed = {}
    for action in parser._actions:
        suppressed[action] = action.default
        action.default = argparse.SUPPRESS
    try:
        return list(vars(parser.parse_known_args(argv)[0]))
    finally:
        for action, default in suppressed.items():
            action.default = default


def _toml_value(value: Any) -> Any:
    """A namespace value as TOML: tuples and lists as lists, paths as absolute paths (a folder's
    config.toml is read back from anywhere), objects with a text form (a shard) as that text; None: left
    out (TOML has no null; the option's default is None)."""
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, list | tuple):
        items = [_toml_value(item) for item in value]
        return [item if isinstance(item, Scalar) else str(item) for item in items if item is not None]
    return str(value)


def resolved_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, keep_relative: Iterable[str] = ()
) -> str:
    """Every setting of `args` as a TOML file `--config` accepts back; `keep_relative` names the path
    options written as given (the results folder: a rerun writes beside the run, not into it)."""
    import tomli_w

    table = {}
    for key, action in settings_actions(parser).items():
        if isinstance(action, argparse._VersionAction | argparse._HelpAction) or key in TALK:
            continue
        value = getattr(args, action.dest, None)
        if action.nargs == 0:  # a switch: its truth, whatever const it stores
            table[key] = value == action.const
            continue
        if key in keep_relative and isinstance(value, Path):
            table[key] = str(value)
            continue
        if isinstance(action, argparse._AppendAction) and value:
            value = [v for group in value for v in group] if isinstance(value[0], tuple) else value
        written = _toml_value(value)
        if written == [] and not isinstance(action, argparse._AppendAction):
            continue  # a list option left empty (--input-sizes): its default, which no text spells
        if written is not None:
            table[key] = written
    header = f"# The settings this folder was made with; {parser.prog} --config config.toml runs them again.\n"
    return header + tomli_w.dumps(table)
