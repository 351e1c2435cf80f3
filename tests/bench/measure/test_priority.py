"""Timed rounds run raised and give the priority back: every thread of the process, both ways."""

import os
import threading

import pytest

from bench.measure import priority
from bench.measure.priority import HIGH_NICE, PRIORITIES, timed_at


def _threads() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/task")]


@pytest.fixture
def a_pool_thread():
    """A thread started before the round, as a runtime's pool is: a priority set on one Linux thread does
    not reach the others."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    yield thread.native_id
    stop.set()
    thread.join()


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux threads only")


def test_realtime_reaches_every_thread_and_is_given_back(a_pool_thread):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    with timed_at("realtime") as grant:
        if grant.got != "realtime":
            pytest.skip(f"this process may not ask for SCHED_RR: {grant.detail}")
        assert grant.detail.startswith("SCHED_RR 1")
        assert a_pool_thread in _threads()
        assert {os.sched_getscheduler(tid) for tid in _threads()} == {os.SCHED_RR}
    assert {os.sched_getscheduler(tid) for tid in _threads()} == {os.SCHED_OTHER}
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in _threads()} == {base}


def test_high_is_nice_minus_10_on_every_thread_and_is_given_back(a_pool_thread):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    with timed_at("high") as grant:
        if grant.got != "high":
            pytest.skip(f"this process may not lower its nice value: {grant.detail}")
        assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in _threads()} == {min(base, HIGH_NICE)}
        assert os.sched_getscheduler(a_pool_thread) == os.SCHED_OTHER
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in _threads()} == {base}


def test_a_refused_level_falls_to_the_next_and_says_why(monkeypatch, a_pool_thread):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(priority.os, "sched_setscheduler", refuse)
    monkeypatch.setattr(priority.os, "sched_getscheduler", lambda tid: os.SCHED_OTHER)
    real_setpriority = os.setpriority
    base = os.getpriority(os.PRIO_PROCESS, 0)

    def refuse_raising(which, who, value):  # an ordinary user: a lower nice value is refused
        if value < base:
            refuse()
        real_setpriority(which, who, value)

    monkeypatch.setattr(priority.os, "setpriority", refuse_raising)
    with timed_at("realtime") as grant:
        assert grant.asked == "realtime" and grant.got == "normal"
        assert "realtime refused: Operation not permitted" in grant.detail
        assert "high refused: Operation not permitted" in grant.detail
        assert grant.describe().startswith(f"normal (nice {base};")
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in _threads()} == {base}


def test_normal_changes_nothing():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    with timed_at("normal") as grant:
        assert (grant.got, grant.detail) == ("normal", f"nice {base}")
        assert os.getpriority(os.PRIO_PROCESS, 0) == base


def test_an_unknown_priority_names_the_levels():
    with pytest.raises(ValueError, match="priority 'urgent': expected one of realtime, high, normal"):
        with timed_at("urgent"):
            pass
    assert PRIORITIES[0] == priority.DEFAULT_PRIORITY
