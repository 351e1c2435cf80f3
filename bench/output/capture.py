"""Third-party output into a log file: this process's file descriptors 1 and 2, its Python warnings and
its log records.

Libraries talk on the terminal in ways that cannot be switched off one by one: C++ code writes straight
to fd 2 (torch's `[W... Quantizer.cpp:111] Warning: ...`), libraries install stream handlers of their
own (NNCF's on stdout, torch's glog-style lines), draw progress bars (NNCF's rich bars) or warn through
`warnings` and `logging`. Pointing descriptors 1 and 2 at the log file catches every one of them,
whatever language wrote it. On top, each Python warning and each log record that reaches the root
logger is written as one line that names its source (`[warning] torch.ao.quantization: ...`,
`[log WARNING] onnx_ir._convenience: ...`; further lines of it indented), so that
`bench.output.library_lines` can count what was captured by source. A worker is captured for its whole
life (`bench.run.isolation`); the command's own process while it runs a benchmark or a tune, its own
lines meanwhile sent to the original stderr (`bench.output.terminal`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bench.errors import UsageError
from bench.output.terminal import PROGRESS_LOGGER, use_terminal

WARNING_HEADER = "[warning]"
LOG_HEADER = "[log {level}]"
CONTINUATION = "    "  # the further lines of one warning or log record
TRACEBACK_END = "--- end of traceback"  # closes segbench's own traceback entry (`traceback_entry`)
COMMAND_LOG = "segbench.log"  # the command's own process's captured output, in the run's logs/
OWN_LINE = "[segbench {time}]"  # segbench's own lines in the run log, apart from what libraries wrote


def write_record(header: str, source: str, text: str) -> None:
    """One warning or log record into fd 2 (the log file while captured): `header source: first line`,
    further lines indented, in one write so that no other writer splits it."""
    first, *rest = text.rstrip("\n").split("\n")
    body = "".join(f"\n{CONTINUATION}{line}" for line in rest)
    _write_all(2, f"{header} {source}: {first}{body}\n".encode("utf-8", "backslashreplace"))


def traceback_entry(text: str) -> str:
    """A failing call's traceback as segbench writes it into a log file: framed, so that counting the
    libraries' lines (`bench.output.library_lines`) leaves segbench's own entries out."""
    return f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n{text.rstrip()}\n{TRACEBACK_END}\n"


def wrote_traceback(path: Path) -> bool:
    """Does the log file hold a traceback entry? (It exists for every captured worker, also one that died
    natively or timed out without one.)"""
    return path.is_file() and TRACEBACK_END in path.read_text(errors="replace")


def module_of(filename: str) -> str:
    """The module a source file is: `.../site-packages/onnxruntime/quantization/base_quantizer.py` ->
    `onnxruntime.quantization.base_quantizer` (what a warning is attributed to)."""
    path = Path(filename)
    parts = path.parts
    inner: tuple[str, ...] = (path.name,)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            inner = parts[len(parts) - parts[::-1].index(marker) :]
            break
    else:
        for root in sorted((entry for entry in sys.path if entry), key=len, reverse=True):
            with contextlib.suppress(ValueError):
                inner = path.relative_to(root).parts
                break
    name = ".".join(inner).removesuffix(".py").removesuffix(".__init__")
    return name.replace(" ", "_") or "unknown"


class _RecordHandler(logging.Handler):
    """Log records that reach the root logger, one record each, WARNING and above: what Python's
    last-resort handler (or a library's `logging.basicConfig`) would have shown on the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + self._formatter.formatException(record.exc_info)
            if record.stack_info:
                text += "\n" + record.stack_info
            source = record.name if record.name != "root" else module_of(record.pathname)
            write_record(LOG_HEADER.format(level=record.levelname), source, text)
        except Exception:  # noqa: BLE001 - logging's own contract: a failing handler never raises
            self.handleError(record)


class _OwnLineHandler(logging.Handler):
    """segbench's own progress and debug lines (the `segbench.progress` logger), also into the log file,
    each `[segbench HH:MM:SS] line`: the run log then reads in order what segbench did and what every
    library said meanwhile, and `bench.output.library_lines` knows which lines are not the libraries'."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            _write_all(2, f"{OWN_LINE.format(time=stamp)} {record.getMessage()}\n".encode("utf-8", "backslashreplace"))
        except Exception:  # noqa: BLE001 - logging's own contract: a failing handler never raises
            self.handleError(record)


class _PythonHooks:
    """`warnings.showwarning` and a root log handler that write records (`write_record`), and back."""

    def __init__(self) -> None:
        self._handler = _RecordHandler()
        self._showwarning: Any = None

    def install(self) -> None:
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning
        logging.getLogger().addHandler(self._handler)

    def uninstall(self) -> None:
        if warnings.showwarning == self._show_warning:
            warnings.showwarning = self._showwarning
        logging.getLogger().removeHandler(self._handler)

    def _show_warning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if file is not None:  # written to a file the caller chose: its own business
            self._showwarning(message, category, filename, lineno, file, line)
            return
        write_record(WARNING_HEADER, module_of(filename), f"{category.__name__}: {message}")


class OutputCapture:
    """Descriptors 1 and 2 of this process, its Python warnings and its root log records into `path`
    (appended) from `start()` to `stop()`. With `keep_terminal`, segbench's own lines still reach the
    original stderr (`bench.output.terminal.terminal()`); a worker has none to write."""

    def __init__(self, path: Path, keep_terminal: bool = False) -> None:
        self.path = path
        self._keep_terminal = keep_terminal
        self._saved: tuple[int, int] | None = None
        self._terminal: TextIO | None = None
        self._own_lines: logging.Handler | None = None
        self._hooks = _PythonHooks()
        self._stdout_line_buffering: bool | None = None

    def start(self) -> OutputCapture:
        _flush_python_streams()
        self._saved = (os.dup(1), os.dup(2))  # not inheritable: no child process can reach the terminal
        self._point_at(self.path)
        if self._keep_terminal:  # the command's own process: its own lines go on the terminal and in the log
            self._own_lines = _OwnLineHandler()
            logging.getLogger(PROGRESS_LOGGER).addHandler(self._own_lines)
            encoding = getattr(sys.__stderr__, "encoding", None) or "utf-8"
            stream = os.fdopen(os.dup(self._saved[1]), "w", buffering=1, encoding=encoding, errors="backslashreplace")
            self._terminal = stream
            use_terminal(stream)
        if isinstance(sys.stdout, io.TextIOWrapper) and not sys.stdout.line_buffering:
            # a library's print() lands in the log in order with what C code writes beside it
            self._stdout_line_buffering = False
            sys.stdout.reconfigure(line_buffering=True)
        self._hooks.install()
        return self

    def move_to(self, path: Path) -> None:
        """Go on into `path` (appended), with what was captured so far copied there first (the command is
        captured before its run folder exists); the former file is removed."""
        if path == self.path:
            return
        _flush_python_streams()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("rb") as old, path.open("ab") as new:
            shutil.copyfileobj(old, new)
        if self._saved is not None:
            self._point_at(path)
        self.path.unlink(missing_ok=True)
        self.path = path

    def stop(self) -> None:
        if self._saved is None:
            return
        _flush_python_streams()
        self._hooks.uninstall()
        if self._stdout_line_buffering is not None and isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=self._stdout_line_buffering)
            self._stdout_line_buffering = None
        if self._own_lines is not None:
            logging.getLogger(PROGRESS_LOGGER).removeHandler(self._own_lines)
            self._own_lines = None
        if self._terminal is not None:
            use_terminal(None)
            self._terminal.close()
            self._terminal = None
        out, err = self._saved
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        self._saved = None

    def __enter__(self) -> OutputCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _point_at(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        finally:
            os.close(fd)


@contextlib.contextmanager
def captured_command() -> Iterator[OutputCapture]:
    """The command's own process captured (its lines kept on the terminal), first into a temporary file:
    the run moves it into its folder's logs/ once the folder exists (`OutputCapture.move_to`), so a usage
    error still leaves nothing on disk. A command that fails before then for another reason keeps the
    file and names it, since what a library said may explain the failure."""
    handle, name = tempfile.mkstemp(prefix="segbench-", suffix=".log")
    os.close(handle)
    temporary = Path(name)
    capture = OutputCapture(temporary, keep_terminal=True).start()
    try:
        yield capture
    except BaseException as exc:
        capture.stop()
        if capture.path == temporary:
            if isinstance(exc, UsageError) or temporary.stat().st_size == 0:
                temporary.unlink(missing_ok=True)
            else:
                print(f"segbench: library output before the failure: {temporary}", file=sys.stderr, flush=True)
        raise
    capture.stop()
    if capture.path == temporary:
        temporary.unlink(missing_ok=True)


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
