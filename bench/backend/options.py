"""A backend's options as a frozen, typed dataclass, parsed once from `--option BACKEND.KEY=VALUE`.

Field types say what a value may be: `Literal[...]` (one of the listed strings), `bool` (true or
false), `int`, or `str` (anything). The strings are parsed in the parent before any work, so a typo
costs nothing, and the typed options travel to the workers; `as_strings` is what is stored with the
artifact, shown in the row and hashed into the cache key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from bench.errors import UsageError

OptionsT = TypeVar("OptionsT", bound="BackendOptions")


@dataclass(frozen=True)
class BackendOptions:
    """A backend's options: subclass as a frozen dataclass whose fields have defaults.

    Field types say what a value may be: `Literal[...]` (one of the listed strings), `bool` (true or
    false), `int`, or `str` (anything). `--option BACKEND.KEY=VALUE` strings are parsed once, in the
    parent, before any work; `check` adds rules that involve several fields.
    """

    @classmethod
    def parse(cls: type[OptionsT], backend: str, given: Mapping[str, str]) -> OptionsT:
        """The options from strings (defaults for the rest); unknown names and bad values are usage errors."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for key, text in given.items():
            if key not in names:
                raise UsageError(
                    f"backend '{backend}' has no option '{key}'; valid options: {', '.join(sorted(names)) or 'none'}"
                )
            values[key] = _parse_value(backend, key, str(text), hints[key])
        options = cls(**values)
        if problem := options.check():
            raise UsageError(f"{backend}: {problem}")
        return options

    @classmethod
    def of(cls: type[OptionsT], options: BackendOptions) -> OptionsT:
        """`options` as this class (a backend reading its own options back from a context)."""
        if not isinstance(options, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(options).__name__}")
        return options

    @classmethod
    def choices(cls) -> dict[str, tuple[str, ...]]:
        """Option name -> allowed values, for the options that have a fixed set (help and listings)."""
        hints = typing.get_type_hints(cls)
        return {f.name: _choices(hints[f.name]) for f in dataclasses.fields(cls) if _choices(hints[f.name])}

    def check(self) -> str | None:
        """A problem that involves several fields, in one line; None when the options are consistent."""
        return None

    def as_strings(self) -> dict[str, str]:
        """Every option as the string a user would type (stored with the artifact and in the row)."""
        return {f.name: _format_value(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class NoOptions(BackendOptions):
    """For backends that take none."""


def _choices(hint: Any) -> tuple[str, ...]:
    if typing.get_origin(hint) is Literal:
        return tuple(str(v) for v in typing.get_args(hint))
    if hint is bool:
        return ("true", "false")
    return ()


def _parse_value(backend: str, key: str, text: str, hint: Any) -> Any:
    if choices := _choices(hint):
        if text not in choices:
            raise UsageError(f"option {backend}.{key}={text} is not valid; expected one of {', '.join(choices)}")
        return text == "true" if hint is bool else text
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"option {backend}.{key}={text} is not valid; expected an integer") from None
    return text


def _format_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
