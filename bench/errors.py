"""Errors that the CLI turns into one clean line and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: an unknown name, a missing file, a value out of range."""


def unknown_name(kind: str, name: str, valid: list[str]) -> UsageError:
    """The one error every registry raises, so messages read the same everywhere."""
    return UsageError(f"unknown {kind} '{name}'; valid {kind}s: {', '.join(sorted(valid))}")
