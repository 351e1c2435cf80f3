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


def test_exception_becomes_a_one_line_error_with_every_line_of_its_message():
    # OpenVINO's errors put the failed check first and the cause last: the row needs both
    assert call_in_worker(_raise, (), timeout_s=60) == ("error", "RuntimeError: boom second line")


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
            assert str(exc) == "RuntimeError: boom second line"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text and "second line" in text
    assert "Traceback" not in capfd.readouterr().err


def _sleep_with_context(context, seconds: float) -> None:
    time.sleep(seconds)


def test_the_budget_is_charged_for_the_cells_own_calls_not_for_waiting():
    """In interleaved timing a cell waits while its neighbours time; the wait must not time it out."""
    from bench.run.isolation import Budget, Worker, WorkerTimeout

    budget = Budget(2.0)
    with Worker() as worker:
        budget.call(worker, _sleep_with_context, 0.5)
        time.sleep(2.0)  # the others' rounds
        assert 0.5 <= budget.spent < 1.5 and budget.remaining() > 0.5
        budget.call(worker, _sleep_with_context, 0.1)  # still within what is left
        with pytest.raises(WorkerTimeout):
            budget.call(worker, _sleep_with_context, 60)
    assert budget.remaining() == 0.0 and budget.spent < 10


def _library_noise(context) -> str:
    """What libraries do inside a stage: a Python warning, a log record, a C-level write to fd 2."""
    import logging
    import warnings

    warnings.warn("the old observer is deprecated", FutureWarning, stacklevel=1)
    logging.getLogger("somelib.quantization").warning("Axis %d is out-of-range", 1)
    os.write(2, b"[W1206 04:05:34.334668848 Quantizer.cpp:111] Warning: quantize_per_tensor is deprecated\n")
    context.stage("calibrate")
    return "done"


def test_library_output_of_a_stage_goes_to_the_log_file_and_is_counted(tmp_path, capfd):
    from bench.output.library_lines import library_summary
    from bench.run.isolation import Worker

    log = tmp_path / "logs" / "cell.log"
    stages = []
    with Worker(stages.append, log_file=log) as worker:
        assert worker.call_with_context(60, _library_noise) == "done"
    assert stages == ["calibrate"]  # the protocol is the pipe: unaffected
    assert capfd.readouterr() == ("", "")  # nothing on the terminal
    text = log.read_text()
    assert "[warning] tests.bench.run.test_isolation: FutureWarning: the old observer is deprecated\n" in text
    assert "[log WARNING] somelib.quantization: Axis 1 is out-of-range\n" in text
    assert "Quantizer.cpp:111] Warning: quantize_per_tensor is deprecated\n" in text
    assert library_summary(log.parent) == (
        f"3 library lines (warnings, log records, progress bars) in {log.parent}/ (most: "
        "1 tests.bench 'FutureWarning: the old observer is deprecated'; 1 somelib.quantization 'Axis N is "
        "out-of-range'; 1 Quantizer.cpp 'Warning: quantize_per_tensor is deprecated')"
    )


def _say_then_abort() -> None:
    os.write(2, b"terminate called after throwing an instance of 'c10::Error'\n")
    os.abort()


def test_a_worker_that_dies_natively_is_reported_as_before_and_its_last_words_are_in_its_log(tmp_path, capfd):
    from bench.run.isolation import Worker, WorkerFailed

    log = tmp_path / "logs" / "cell.log"
    with Worker(log_file=log) as worker, pytest.raises(WorkerFailed, match=r"^worker died \(killed by SIGABRT\)$"):
        worker.call(60, _say_then_abort)
    assert "terminate called after throwing" in log.read_text()
    assert capfd.readouterr().err == ""


def _caught() -> str:
    import logging

    try:
        raise ValueError("a method failed")
    except ValueError:
        logging.getLogger("segbench").exception("Grad-CAM by fake-quant failed")
    return "the other methods stand"


def test_a_failure_the_work_catches_and_logs_goes_to_the_cell_log_too(tmp_path):
    from bench.run.isolation import Worker

    log = tmp_path / "logs" / "cell.log"
    with Worker(log_file=log) as worker:
        assert worker.call(60, _double, 2) == 4
        assert worker.call(60, _caught) == "the other methods stand"
    text = log.read_text()
    assert "Grad-CAM by fake-quant failed" in text and "Traceback (most recent call last)" in text
    assert "ValueError: a method failed" in text


def _print_unterminated() -> str:
    import sys

    import torch  # what a stage imports: its teardown is what a finishing worker skips

    sys.stdout.write("a line without its newline, still in Python's buffer")
    return str(torch.ones(2).sum().item())


def test_a_finishing_worker_leaves_at_once_and_writes_what_it_buffered_first(tmp_path):
    from bench.run.isolation import Worker

    log = tmp_path / "logs" / "cell.log"
    worker = Worker(log_file=log)
    assert worker.call(60, _print_unterminated) == "2.0"
    start = time.monotonic()
    worker.close()
    closed_s = time.monotonic() - start
    assert worker._process.exitcode == 0
    assert closed_s < 0.5, closed_s  # the interpreter's teardown with torch imported took 1.1-1.3 s here
    assert "a line without its newline, still in Python's buffer" in log.read_text()


def _environment(name: str) -> str | None:
    return os.environ.get(name)


def _already_imported() -> list[str]:
    import sys

    return [name for name in ("numpy", "torch", "bench.run.stages") if name in sys.modules]


def _two_threads_of_torch_and_blas() -> tuple[int, float, float]:
    import numpy as np
    import scipy.linalg
    import torch

    torch.set_num_threads(2)
    out = torch.nn.functional.conv2d(torch.ones(1, 3, 64, 64), torch.ones(8, 3, 3, 3), padding=1)
    square = np.full((256, 256), 1.0 / 256)
    return torch.get_num_threads(), float(out[0, 0, 10, 10]), float(scipy.linalg.blas.dgemm(1.0, square, square)[0, 0])


def test_a_worker_sees_the_parents_environment_as_it_is_when_the_worker_starts(monkeypatch):
    """Forked from a server started earlier, a worker must not carry the server's environment: a cache
    folder set after the first worker (a test's, a library caller's) would be missed."""
    from bench.run.isolation import Worker

    monkeypatch.setenv("SEGBENCH_ISOLATION_PROBE", "before")
    with Worker() as first:
        assert first.call(60, _environment, "SEGBENCH_ISOLATION_PROBE") == "before"
    monkeypatch.setenv("SEGBENCH_ISOLATION_PROBE", "after")
    monkeypatch.setenv("SEGBENCH_ISOLATION_NEW", "new")
    with Worker() as second:
        assert second.call(60, _environment, "SEGBENCH_ISOLATION_PROBE") == "after"
        assert second.call(60, _environment, "SEGBENCH_ISOLATION_NEW") == "new"
    monkeypatch.delenv("SEGBENCH_ISOLATION_NEW")
    with Worker() as third:
        assert third.call(60, _environment, "SEGBENCH_ISOLATION_NEW") is None


def test_workers_start_with_torch_imported_and_its_threads_work_after_the_fork():
    """The forkserver imported torch and the stages once (`PRELOADED`); a worker forked from it runs
    torch on two threads and numpy's and scipy's BLAS (a thread pool started before the fork and not
    restarted after it would hang here)."""
    import multiprocessing as mp

    from bench.run.isolation import Worker

    if "forkserver" not in mp.get_all_start_methods():
        pytest.skip("this platform has no forkserver: workers are spawned and import torch themselves")
    with Worker() as worker:
        assert worker.call(60, _already_imported) == ["numpy", "torch", "bench.run.stages"]
        assert worker.call(60, _two_threads_of_torch_and_blas) == (2, 27.0, 1.0 / 256)
