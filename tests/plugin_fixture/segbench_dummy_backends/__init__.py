"""A separate 'package' that adds backends through the `segbench.backends` entry point.

- dummy-threshold: a real (if naive) segmenter with no model at all: logits = (-x, x) per pixel; it
  sleeps $DUMMY_THRESHOLD_DELAY_MS per call (default 0), the latency step a nightly-history test injects.
- dummy-abort: dies with os.abort() when loaded, like a native crash in a runtime.
- dummy-fake-int8: claims int8 but its artifact has no int8 operator, which must be an error.
- dummy-failing-stages: times like dummy-threshold, then every stage after the timing fails: its
  evaluation and its profiler raise, and of its two Grad-CAM methods fake-quant raises (finite
  differences give maps).
- dummy-gradcam-error: the whole Grad-CAM stage raises, with a message of several lines, as OpenVINO's do.
- dummy-no-throughput: times and evaluates like dummy-threshold (without its delay), but its session has no
  throughput mode: `--scenario offline|server` fails on it (its status column says why; its latency stands).
- dummy-float, dummy-int8: a runtime of its own, declared as a built-in one is (issue 32): dummy-int8's float
  side is dummy-float (`float_counterparts`), both are keyed on this distribution's version (`libraries`),
  and both profile one layer, `head`, at the fixed time each call sleeps (dummy-int8 slower: "not faster in int8").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import (
    Artifact,
    Backend,
    GradcamMaps,
    GradcamRequest,
    OpCoverage,
    OpTime,
    PrepareContext,
    Profile,
    Session,
)


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


class FailingStagesSession(ThresholdSession):
    def to_numpy(self, outputs: np.ndarray) -> np.ndarray:
        raise RuntimeError("the logits could not be read back")

    def profile(self, inputs: Any, calls: int, work_dir: Path) -> Any:
        raise RuntimeError("the profiler lost its counters")


class DummyFailingStagesBackend(DummyThresholdBackend):
    name = "dummy-failing-stages"
    precisions = ("int8",)

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        return OpCoverage(int8={"Conv": 1}, float={})

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return FailingStagesSession()

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        height, width = request.images.shape[2:]
        maps = np.broadcast_to(
            np.clip(request.images[:, :1], 0, None), (len(request.images), len(request.classes), height, width)
        )
        found = GradcamMaps(
            maps={layer: np.ascontiguousarray(maps, np.float32) for layer in request.layers},
            method="finite-difference",
            seconds_per_image=0.0,
            step=request.steps,
            vs_deployed_max_abs=0.0,
        )
        try:
            raise RuntimeError("the fake-quant simulation diverged")
        except RuntimeError as exc:
            return [found, GradcamMaps.failed("fake-quant", exc)]


class DummyGradcamErrorBackend(DummyThresholdBackend):
    name = "dummy-gradcam-error"

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        raise RuntimeError(
            "Check 'input_shapes[1].rank().compatible(0)' failed at range_shape_inference.hpp:47:\n"
            "While validating node 'Range node_arange_1':\n'stop' input is not a scalar"
        )


class NoThroughputSession(ThresholdSession):
    def __init__(self) -> None:
        super().__init__()
        self.delay_s = 0.0

    def throughput_settings(self, batch_sizes: Any, threads: int) -> Any:
        raise RuntimeError("this runtime has no throughput mode")


class DummyNoThroughputBackend(DummyThresholdBackend):
    name = "dummy-no-throughput"

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return NoThroughputSession()


class FixedProfileSession(ThresholdSession):
    """Its profile: one layer, `head`, at `us_per_call` µs a call in `precision`; each call sleeps that long
    too, so the int8 cell is slower than its float side whatever the machine does."""

    def __init__(self, us_per_call: float, precision: str) -> None:
        super().__init__()
        self.us_per_call, self.precision = us_per_call, precision
        self.delay_s = us_per_call / 1e6

    def profile(self, inputs: Any, calls: int, work_dir: Path) -> Profile:
        for _ in range(calls):
            self.run(inputs)
        op = OpTime("head_conv", "Conv", "head", self.precision, calls, self.us_per_call * calls)
        return Profile("dummy counters", calls, self.us_per_call * calls, (op,), "fixed by the plugin")


class DummyFloatBackend(DummyThresholdBackend):
    name = "dummy-float"
    libraries = ("segbench-dummy-backends",)

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return FixedProfileSession(100.0, "fp32")


class DummyInt8Backend(DummyThresholdBackend):
    name = "dummy-int8"
    precisions = ("int8",)
    float_counterparts = (("dummy-float", "fp32"),)
    libraries = ("segbench-dummy-backends",)

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        return OpCoverage(int8={"Conv": 1}, float={})

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        return FixedProfileSession(300.0, "int8")
