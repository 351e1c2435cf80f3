"""Peak and current resident memory from /proc/self/status, the reset of the high-water mark, and the
fallbacks (and the method each reading names) where /proc cannot be read or written. The files are
stand-ins: the test process's own high-water mark is never reset."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from bench.measure import memory

STATUS = "Name:\tpython\nVmPeak:\t 9999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\nThreads:\t4\n"


@pytest.fixture
def status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "status"
    path.write_text(STATUS)
    monkeypatch.setattr(memory, "_STATUS", path)
    return path


def test_peak_and_current_are_read_from_their_own_fields_in_mib(status: Path):
    assert memory.peak_rss_mib() == 2.0  # VmHWM, not VmPeak (virtual)
    assert memory.current_rss_mib() == 1.5


def test_without_proc_the_peak_is_the_whole_process_and_current_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(memory, "_STATUS", tmp_path / "missing")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert before <= memory.peak_rss_mib() <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert memory.current_rss_mib() is None


def test_a_field_missing_from_status_falls_back_too(status: Path):
    status.write_text("Name:\tpython\n")
    assert memory.current_rss_mib() is None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert before <= memory.peak_rss_mib() <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_the_reset_writes_5_to_clear_refs_and_names_the_method_the_reading_will_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    clear_refs = tmp_path / "clear_refs"
    monkeypatch.setattr(memory, "_CLEAR_REFS", clear_refs)
    assert memory.reset_peak_rss() == "VmHWM-after-reset"
    assert clear_refs.read_text() == "5"
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "no-such-folder" / "clear_refs")
    assert memory.reset_peak_rss() == "ru_maxrss-whole-process"
