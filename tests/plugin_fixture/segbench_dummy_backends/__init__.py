"""A separate 'package' that adds backends through the `segbench.backends` entry point.

- dummy-threshold: a real (if naive) segmenter with no model at all: logits = (-x, x) per pixel; it
  sleeps $DUMMY_THRESHOLD_DELAY_MS per call (default 0), the latency step a nightly-history test injects.
- dummy-abort: dies with os.abort() when loaded, like a native crash in a runtime.
- dummy-fake-int8: claims int8 but its artifact has no int8 operator, which must be an error.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import Artifact, Backend, OpCoverage, PrepareContext, Session


class ThresholdSession(Session):
    def __init__(self) -> None:
        self.delay_s = float(os.environ.get("DUMMY_THRESHOLD_DELAY_MS", "0")) / 1000

    def to_input(self, batch: np.ndarray) -> np.ndarray:
        return batch

    def run(self, inputs: np.ndarray) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.concatenate([-inputs[:, :1], inputs[:, :1]], axis=1)

    def to_numpy(self, outputs: np.ndarray) -> np.ndarray:
        return outputs


class DummyThresholdBackend(Backend):
    name = "dummy-threshold"
    precisions = ("fp32",)
    devices = ("cpu",)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        (out_dir / "threshold.json").write_text(json.dumps({"threshold": 0.0}))
        return {}

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return ThresholdSession()


class DummyAbortBackend(DummyThresholdBackend):
    name = "dummy-abort"

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        os.abort()


class DummyFakeInt8Backend(DummyThresholdBackend):
    name = "dummy-fake-int8"
    precisions = ("int8",)

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        return OpCoverage(int8={}, float={"Conv": 3})
