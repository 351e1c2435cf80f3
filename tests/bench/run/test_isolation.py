import os
import time

import pytest

from bench.run.isolation import call_in_worker

pytestmark = pytest.mark.integration  # every test spawns a worker process


def _abort() -> None:
    os.abort()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _raise() -> None:
    raise RuntimeError("boom\nsecond line")


def _double(x: int) -> int:
    return 2 * x


def test_worker_returns_value():
    assert call_in_worker(_double, (21,), timeout_s=60) == ("ok", 42)


def test_native_abort_becomes_an_error_message():
    status, message = call_in_worker(_abort, (), timeout_s=60)
    assert status == "error" and message == "worker died (killed by SIGABRT)"


def test_exception_becomes_a_one_line_error():
    assert call_in_worker(_raise, (), timeout_s=60) == ("error", "RuntimeError: boom")


def test_timeout_kills_the_worker():
    start = time.monotonic()
    status, message = call_in_worker(_sleep, (60,), timeout_s=3)
    assert status == "error" and message == "timeout after 3 s"
    assert time.monotonic() - start < 30


def test_a_failure_traceback_goes_to_the_log_file_not_the_terminal(tmp_path, capfd):
    from bench.run.isolation import Worker, WorkerFailed

    log = tmp_path / "logs" / "cell.log"
    with Worker(log_file=log) as worker:
        try:
            worker.call(60, _raise)
        except WorkerFailed as exc:
            assert str(exc) == "RuntimeError: boom"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text and "second line" in text
    assert "Traceback" not in capfd.readouterr().err
