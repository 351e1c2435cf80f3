"""The terminal segbench's own lines are written to (progress, the training bar, end-of-run summaries), and
the `segbench` logger its progress lines go through.

While a command captures third-party output (`bench.output.capture`), file descriptor 2 and
`sys.stderr` lead to a log file, so that every library's writes land there whatever way they take;
segbench's own lines must then go elsewhere: to a copy of the descriptor the process started with.
Outside a capture that is simply `sys.stderr`.

Progress is stdlib logging, so that a library caller decides where it goes: progress lines are INFO
records of the `segbench.progress` logger, whose handler writes each as a bare line to `terminal()`; the
`segbench` logger above it starts at INFO (what `segbench run` always printed), so that
`logging.getLogger("segbench").setLevel(logging.WARNING)` silences progress, and replacing the handlers
of `segbench.progress` (or setting its `propagate`) redirects it. It does not propagate by default: a
library that called `logging.basicConfig` would otherwise print every progress line a second time, into
the captured log file. The `segbench` logger itself keeps no handler and propagates, as before: its
errors (a caught Grad-CAM failure) reach the capture's root handler or a worker's cell log
(`bench.run.isolation`). The command line sets the levels from --quiet and --verbose (`verbosity`); while
a command is captured its own lines also go into the run log (`bench.output.capture`), --quiet or not.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

LOGGER_NAME = "segbench"
PROGRESS_LOGGER = f"{LOGGER_NAME}.progress"  # segbench's own lines: progress, and --verbose's settings

_terminal: TextIO | None = None


def terminal() -> TextIO:
    """Where segbench's own lines go now: the original stderr, also while fd 2 is captured."""
    return _terminal if _terminal is not None else sys.stderr


def use_terminal(stream: TextIO | None) -> None:
    """Set (a stream on the saved original fd 2) or clear (None: back to `sys.stderr`) the terminal;
    called by the capture when it starts and stops."""
    global _terminal
    _terminal = stream


class TerminalHandler(logging.Handler):
    """Each record as a bare line on `terminal()`, looked up per record: it changes when a capture starts."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = terminal()
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: a failing handler never raises
            self.handleError(record)


TERMINAL_HANDLER = TerminalHandler()  # its level is what --quiet sets: the run log still gets every line


def _progress_logger() -> logging.Logger:
    """`segbench.progress`, set up once: the terminal handler, and `segbench` at INFO unless someone set a
    level on it first."""
    parent = logging.getLogger(LOGGER_NAME)
    if parent.level == logging.NOTSET:
        parent.setLevel(logging.INFO)
    logger = logging.getLogger(PROGRESS_LOGGER)
    if not logger.handlers:
        logger.addHandler(TERMINAL_HANDLER)
        logger.propagate = False
    return logger


logger = _progress_logger()
segbench_logger = logging.getLogger(LOGGER_NAME)


def progress(message: str) -> None:
    """One progress line (the `log` callable the runners take): INFO on `segbench.progress`."""
    logger.info(message)


@contextlib.contextmanager
def verbosity(quiet: bool, verbose: bool) -> Iterator[None]:
    """One command's levels: the `segbench` logger at DEBUG with --verbose, else INFO; --quiet raises
    only the terminal handler's level to WARNING, so that a quiet night's run log (its logs/segbench.log,
    `bench.output.capture`) still holds every progress line. Both are restored after, so that a command run
    in-process (a test, a notebook) leaves a library caller's set-up as it found it."""
    before, handler_before = segbench_logger.level, TERMINAL_HANDLER.level
    segbench_logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    TERMINAL_HANDLER.setLevel(logging.WARNING if quiet else logging.NOTSET)
    try:
        yield
    finally:
        segbench_logger.setLevel(before)
        TERMINAL_HANDLER.setLevel(handler_before)
