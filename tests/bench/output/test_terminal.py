"""The `segbench` logger segbench's progress goes through: on the terminal at INFO by default, silenced or
redirected by a library caller's own logging set-up, its level set per command by --quiet and --verbose."""

from __future__ import annotations

import io
import logging

import pytest

from bench.output.terminal import LOGGER_NAME, logger, progress, segbench_logger, use_terminal, verbosity


@pytest.fixture
def terminal_stream():
    stream = io.StringIO()
    use_terminal(stream)
    yield stream
    use_terminal(None)


def test_progress_is_a_bare_line_on_the_terminal_at_info(terminal_stream):
    assert segbench_logger is logging.getLogger(LOGGER_NAME) and segbench_logger.level == logging.INFO
    assert logger.parent is segbench_logger and not logger.propagate
    progress("[1/2] synthetic-nuclei / unet / torch-eager: load")
    assert terminal_stream.getvalue() == "[1/2] synthetic-nuclei / unet / torch-eager: load\n"


def test_progress_follows_the_terminal_per_line(capsys):
    progress("to stderr")  # no capture: the terminal is sys.stderr, looked up when the line is written
    assert capsys.readouterr().err == "to stderr\n"


def test_segbench_errors_keep_their_way_to_the_root_not_the_terminal(terminal_stream, caplog):
    logging.getLogger(LOGGER_NAME).error("Grad-CAM by fd failed")  # what bench.backend.records logs
    assert [r.getMessage() for r in caplog.records] == ["Grad-CAM by fd failed"]
    assert terminal_stream.getvalue() == ""


@pytest.mark.parametrize(
    ("quiet", "verbose", "shown"), [(False, False, "info"), (True, False, ""), (False, True, "debug info")]
)
def test_verbosity_sets_the_level_for_one_command_and_restores_it(quiet, verbose, shown, terminal_stream):
    with verbosity(quiet, verbose):
        logger.debug("debug")
        progress("info")
    assert " ".join(terminal_stream.getvalue().split()) == shown
    assert segbench_logger.level == logging.INFO  # as before the command


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_library_caller_silences_or_redirects_progress(terminal_stream, monkeypatch):
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))  # put back after the test
    try:
        segbench_logger.setLevel(logging.WARNING)
        progress("silenced")
        assert terminal_stream.getvalue() == ""
        collect = _Collect()
        logger.handlers[:] = [collect]
        segbench_logger.setLevel(logging.INFO)
        progress("redirected")
        assert collect.messages == ["redirected"] and terminal_stream.getvalue() == ""
    finally:
        segbench_logger.setLevel(logging.INFO)
