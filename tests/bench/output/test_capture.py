"""The capture of third-party output, in this process: descriptors 1 and 2, warnings and log records go
to the file; segbench's own lines still reach the terminal; everything is put back afterwards."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.output.capture import OutputCapture, captured_command, module_of, traceback_entry, wrote_traceback
from bench.output.terminal import terminal


def _speak() -> None:
    """A library's ways to reach the terminal: a warning, a log record, C-level writes to fd 2 and 1, and
    Python's own streams."""
    warnings.warn("the old API is deprecated", FutureWarning, stacklevel=1)
    logging.getLogger("somelib.quantization").warning("Axis %d is out-of-range\nsecond line", 1)
    os.write(2, b"[W1206 04:05:34.334668848 Quantizer.cpp:111] Warning: deprecated (function operator())\n")
    os.write(1, b"native stdout line\n")
    # Python's own streams (under capfd, sys.stdout and sys.stderr are pytest's files, not fds 1 and 2)
    print("a library's print", file=sys.__stdout__, flush=True)
    print("a library's stderr print", file=sys.__stderr__, flush=True)


def test_library_output_goes_to_the_file_and_own_lines_to_the_terminal(tmp_path, capfd):
    log = tmp_path / "logs" / "segbench.log"
    with OutputCapture(log, keep_terminal=True):
        _speak()
        print("[1/2] suite / model / backend: load", file=terminal(), flush=True)
    print("after the capture", file=sys.stderr, flush=True)
    out, err = capfd.readouterr()
    assert out == "" and err == "[1/2] suite / model / backend: load\nafter the capture\n"
    text = log.read_text()
    assert "[warning] tests.bench.output.test_capture: FutureWarning: the old API is deprecated\n" in text
    assert "[log WARNING] somelib.quantization: Axis 1 is out-of-range\n    second line\n" in text
    for line in ("Quantizer.cpp:111] Warning: deprecated", "native stdout line", "a library's print", "stderr print"):
        assert line in text
    assert terminal() is sys.stderr  # put back
    assert warnings.showwarning.__module__ == "warnings"
    assert not any(type(h).__name__ == "_RecordHandler" for h in logging.getLogger().handlers)


def test_a_root_logger_record_is_attributed_to_the_module_that_logged_it(tmp_path):
    log = tmp_path / "worker.log"
    with OutputCapture(log):
        logging.warning("Axis 1 is out-of-range for weight 'w'")  # what onnxruntime.quantization does
    assert log.read_text() == "[log WARNING] tests.bench.output.test_capture: Axis 1 is out-of-range for weight 'w'\n"


def test_moving_keeps_what_was_captured_and_goes_on_in_the_new_file(tmp_path, capfd):
    first, second = tmp_path / "first.log", tmp_path / "run" / "logs" / "segbench.log"
    with OutputCapture(first) as capture:
        os.write(2, b"before the folder\n")
        capture.move_to(second)
        os.write(2, b"after the folder\n")
    assert not first.exists()
    assert second.read_text() == "before the folder\nafter the folder\n"
    assert capfd.readouterr().err == ""


def test_a_usage_error_leaves_no_file_behind_and_another_failure_names_it(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(UsageError), captured_command():
        os.write(2, b"library chatter\n")
        raise UsageError("unknown suite")
    assert list(tmp_path.iterdir()) == [] and capfd.readouterr().err == ""
    with pytest.raises(RuntimeError), captured_command():
        os.write(2, b"library chatter\n")
        raise RuntimeError("training diverged")
    (kept,) = tmp_path.iterdir()
    assert kept.read_text() == "library chatter\n"
    assert capfd.readouterr().err == f"segbench: library output before the failure: {kept}\n"


def test_a_finished_command_moved_into_its_folder_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with captured_command() as capture:
        capture.move_to(tmp_path / "run" / "logs" / "segbench.log")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_module_of_names_the_module_a_file_is():
    site = "/venv/lib/python3.11/site-packages"
    assert module_of(f"{site}/onnxruntime/quantization/base_quantizer.py") == "onnxruntime.quantization.base_quantizer"
    assert module_of(f"{site}/nncf/__init__.py") == "nncf"
    assert module_of(str(Path(__file__))) == "tests.bench.output.test_capture"
    assert module_of("<frozen importlib._bootstrap>") == "<frozen_importlib._bootstrap>"


def test_a_traceback_entry_is_framed():
    entry = traceback_entry("Traceback (most recent call last):\n  File ...\nValueError: x\n")
    lines = entry.splitlines()
    assert lines[0].startswith("--- ") and f"pid {os.getpid()}" in lines[0]
    assert lines[-1] == "--- end of traceback" and lines[-2] == "ValueError: x"


def test_a_log_file_says_whether_it_holds_a_traceback(tmp_path):
    log = tmp_path / "cell.log"
    assert not wrote_traceback(log)
    log.write_text("[W1206 04:05:34.334668848 Quantizer.cpp:111] Warning: deprecated\n")
    assert not wrote_traceback(log)  # a worker that died natively: its last words, no traceback
    with log.open("a") as file:
        file.write(traceback_entry("Traceback (most recent call last):\nValueError: x"))
    assert wrote_traceback(log)


def test_segbench_own_lines_reach_the_run_log_too_also_under_quiet(tmp_path, capfd):
    """The run log reads in order what segbench did and what libraries said; --quiet silences only the
    terminal, and the library count leaves segbench's lines out."""
    from bench.output.library_lines import count_library_lines
    from bench.output.terminal import progress, verbosity

    log = tmp_path / "logs" / "segbench.log"
    with verbosity(quiet=True, verbose=False), OutputCapture(log, keep_terminal=True):
        progress("[1/2] suite / model / backend: load")
        os.write(2, b"a library line\n")
        progress("[1/2] suite / model / backend: ok")
    assert capfd.readouterr().err == ""  # quiet: nothing on the terminal
    lines = log.read_text().splitlines()
    assert [line.split("] ", 1)[1] if line.startswith("[segbench ") else line for line in lines] == [
        "[1/2] suite / model / backend: load",
        "a library line",
        "[1/2] suite / model / backend: ok",
    ]
    assert lines[0].startswith("[segbench ") and lines[0][10:18].count(":") == 2  # [segbench HH:MM:SS]
    assert sum(count_library_lines(log.parent).values()) == 1  # only the library's line is counted
    progress("after the capture")  # the handler is gone with the capture
    assert "after the capture" not in log.read_text()
