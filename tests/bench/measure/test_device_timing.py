"""CUDA-event timing, on stand-in events (no GPU here): the events are recorded on the session's own stream
around the call, the end event is waited for, and the elapsed milliseconds come back as nanoseconds."""

from __future__ import annotations

import pytest
import torch

from bench.measure.device_timing import CudaEventTimer


class _Event:
    log: list[str] = []

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.name = "end" if self.log else "start"  # the timer makes its start event first
        self.log.append(f"new {self.name}")

    def record(self, stream: object) -> None:
        self.log.append(f"record {self.name} on {stream}")

    def synchronize(self) -> None:
        self.log.append(f"synchronize {self.name}")

    def elapsed_time(self, end: _Event) -> float:
        assert (self.name, end.name) == ("start", "end")
        return 1.25  # ms, as torch.cuda.Event reports it


def test_one_call_between_events_on_the_sessions_stream(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_Event, "log", [])
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    timer = CudaEventTimer("stream-7")
    assert timer.time_ns(lambda: _Event.log.append("call")) == 1_250_000
    assert _Event.log == [
        "new start",
        "new end",
        "record start on stream-7",
        "call",
        "record end on stream-7",
        "synchronize end",
    ]
