"""The scheduling priority timed code runs at: why a busy core stops bending the ratios.

Under one busy core (another process spinning, 2-vCPU machine, `--threads 2`), every runtime loses a
different share of its speed, so interleaving alone cannot keep the ratios: measured here at normal
priority, torch-eager went from 11.1 to 31.7 ms while OpenVINO's speedup over it grew from 1.60x to
2.32x (+45%) and ORT QDQ's by 10%. Each runtime's threads wait for each other differently (OpenMP spins
at barriers, OpenVINO's TBB workers sleep and are woken), and a woken thread waits for the busy one's
time slice. At nice -10 torch and ONNX Runtime held within 4% of quiet, OpenVINO did not (-36%); with
rounds on `SCHED_RR` every backend's speedup held within 3.5% of a quiet run's, and the busy process got
0.6-2.0% of the CPU while rounds ran (35-47% at normal priority).

So a timed round runs, by default, at real-time priority where the process may ask for it, and only
while it runs: every thread of the process is raised at the start of a round and put back after, so
loading, calibration, evaluation and Grad-CAM never hold the machine. Where the operating system
refuses, the next level down is tried and the refusal is recorded, never hidden: the row's
`timing_priority` says what the timed calls really ran at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PRIORITIES = ("realtime", "high", "normal")  # from the most protected; each falls back to the next
DEFAULT_PRIORITY = "realtime"
HIGH_NICE = -10  # measured enough for torch and ONNX Runtime, not for OpenVINO (module docstring)
REALTIME_LEVEL = 1  # the lowest SCHED_RR priority: above every ordinary process, below the kernel's own


@dataclass(frozen=True)
class PriorityGrant:
    """What a round asked for and what it got: `got` is one of PRIORITIES; `detail` names the setting
    (`SCHED_RR 1`, `nice -10`) or why the levels above were refused."""

    asked: str
    got: str
    detail: str

    def describe(self) -> str:
        return f"{self.got} ({self.detail})"


def _threads() -> list[int]:
    """Every thread of this process: a priority set on one Linux thread does not reach the others, and
    the runtimes' pools are started before the first round."""
    try:
        return [int(name) for name in os.listdir(Path("/proc/self/task"))]
    except OSError:
        return [0]  # not Linux: the calling thread (on other systems, the process)


def _for_each_thread(set_one) -> None:
    for tid in _threads():
        try:
            set_one(tid)
        except ProcessLookupError:  # the thread ended between listing and setting
            continue


def _realtime() -> str:
    if not hasattr(os, "sched_setscheduler"):
        raise OSError("no SCHED_RR on this operating system")
    param = os.sched_param(REALTIME_LEVEL)
    _for_each_thread(lambda tid: os.sched_setscheduler(tid, os.SCHED_RR, param))
    return f"SCHED_RR {REALTIME_LEVEL}"


def _high(base_nice: int) -> str:
    nice = min(base_nice, HIGH_NICE)
    _for_each_thread(lambda tid: os.setpriority(os.PRIO_PROCESS, tid, nice))
    return f"nice {nice}"


def _restore(base_nice: int) -> None:
    """Every thread back to the ordinary policy and the process's own nice (always allowed: lowering
    one's priority needs no permission)."""

    def put_back(tid: int) -> None:
        if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(tid) != os.SCHED_OTHER:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, tid, base_nice)

    _for_each_thread(put_back)


def _raise(asked: str, base_nice: int) -> PriorityGrant:
    refused: list[str] = []
    for level in PRIORITIES[PRIORITIES.index(asked) :]:
        try:
            if level == "realtime":
                detail = _realtime()
            elif level == "high":
                detail = _high(base_nice)
            else:
                detail = f"nice {base_nice}"
        except OSError as exc:
            _restore(base_nice)  # a refusal part-way leaves no thread raised
            refused.append(f"{level} refused: {exc.strerror or exc}")
            continue
        return PriorityGrant(asked, level, "; ".join([detail, *refused]))
    raise AssertionError("normal priority is never refused")


@contextmanager
def timed_at(asked: str) -> Iterator[PriorityGrant]:
    """Every thread of this process at `asked` (or the closest level allowed) for the block, then back."""
    if asked not in PRIORITIES:
        raise ValueError(f"priority '{asked}': expected one of {', '.join(PRIORITIES)}")
    base_nice = os.getpriority(os.PRIO_PROCESS, 0)
    grant = _raise(asked, base_nice)
    try:
        yield grant
    finally:
        if grant.got != "normal":
            _restore(base_nice)
