"""Errors that the CLI turns into one clean line and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: an unknown name, a missing file, a value out of range."""


def unknown_name(kind: str, name: str, valid: list[str]) -> UsageError:
    """The one error every registry raises, so messages read the same everywhere."""
    return UsageError(f"unknown {kind} '{name}'; valid {kind}s: {', '.join(sorted(valid))}")


def one_line(exc: BaseException, limit: int = 500) -> str:
    """`Type: message` on one line, for a row's status. Every line of the message is kept (joined), not
    only the first: OpenVINO's and ONNX Runtime's errors put the failed check first and its cause last
    (`Check '...' failed at range_shape_inference.hpp:47: ... 'stop' input is not a scalar`)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    found = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return found if len(found) <= limit else found[: limit - 1] + "…"
