"""CUDA-event timing on a session's own stream, shared by the GPU sessions.

Events recorded on the stream the work is queued on measure device time from the first kernel to the
last, without the host-side launch jitter that a wall clock adds; `synchronize` on the end event
makes each sample complete before the next call starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CudaEventTimer:
    def __init__(self, stream: Any) -> None:
        import torch

        self.stream = stream
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def time_ns(self, call: Callable[[], object]) -> int:
        self._start.record(self.stream)
        call()
        self._end.record(self.stream)
        self._end.synchronize()
        return int(self._start.elapsed_time(self._end) * 1e6)
