"""The two classes a backend implements: `Backend` (prepare an artifact, load it) and `Session` (run it).

The runner only ever talks to these, so every backend is timed, sized and evaluated the same way;
`Backend`'s docstring is the whole contract a plugin author follows.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.backend.layers import QuantLayer
from bench.backend.options import BackendOptions, NoOptions
from bench.backend.profiling import Profile
from bench.backend.records import (
    AccuracyControlResult,
    Artifact,
    GradcamMaps,
    GradcamRequest,
    OpCoverage,
    PrepareContext,
    ThroughputSetting,
)

# Keys of the artifact metadata that the harness owns: a backend's `prepare` may set "coverage"
# (an `OpCoverage`) and "notes" (str); "options", "key" and "prepare_s" are written by the cache.
RESERVED_META_KEYS = ("coverage", "notes", "options", "key", "prepare_s")


class Session(ABC):
    """A loaded artifact. `to_input` and `to_numpy` convert outside the timed region."""

    timer: str = "perf_counter_ns"
    # Whether `run` may be called from several threads at once on this one session (the default
    # throughput settings then include `threads` concurrent callers); a session that is not safe so, or
    # whose runtime gains nothing from it (torch: batch), says False.
    concurrent_runs: ClassVar[bool] = True

    @abstractmethod
    def to_input(self, batch: np.ndarray) -> Any: ...

    @abstractmethod
    def run(self, inputs: Any) -> Any:
        """Logits for one batch, in the backend's native type; may return before the device is done."""

    @abstractmethod
    def to_numpy(self, outputs: Any) -> np.ndarray: ...

    def synchronize(self) -> None:
        """Block until queued work is finished; a no-op for synchronous CPU backends."""

    def time_call(self, inputs: Any) -> int:
        """Nanoseconds for one `run` until its results are ready. GPU sessions override this with
        device events recorded on their own stream (and set `timer` accordingly)."""
        start = time.perf_counter_ns()
        self.run(inputs)
        self.synchronize()
        return time.perf_counter_ns() - start

    def time_end_to_end(self, batch: np.ndarray) -> int:
        """Nanoseconds from a host batch to host logits, by the host's clock: `to_input` (the copy to the
        device), `run`, `to_numpy` (the copy back) and a synchronize, as trtexec's end-to-end latency counts
        them beside its compute-only GPU time. What `time_call` leaves out on a GPU session."""
        start = time.perf_counter_ns()
        self.to_numpy(self.run(self.to_input(batch)))
        self.synchronize()
        return time.perf_counter_ns() - start

    def throughput_settings(self, batch_sizes: Sequence[int], threads: int) -> list[ThroughputSetting]:
        """The ways of running this session that `--scenario offline` tries (and `server` chooses from, at
        the run's batch size), each measured for its sustained images/s. Default: every batch size with one
        caller and, where `concurrent_runs` and `threads` > 1, `threads` concurrent callers of this same
        session. A runtime with throughput settings of its own (streams, infer requests, sessions with fewer
        threads) offers them here, keeping to `threads` threads in all where it can."""
        counts = (1, threads) if self.concurrent_runs and threads > 1 else (1,)
        return [ThroughputSetting(size, count) for size in batch_sizes for count in counts]

    def callers(self, setting: ThroughputSetting, batch: np.ndarray) -> list[Callable[[], object]]:
        """`setting.callers` blocking calls, each one inference of `batch` (already of `setting.batch_size`
        images) to completion, to be called at the same time from as many threads
        (`bench.measure.scenarios`). Whatever a setting needs (a compile, sessions of its own) is made here,
        untimed, and dropped with the callables. Default: this session's own `run`, the input converted once."""
        inputs = self.to_input(batch)

        def call() -> object:
            outputs = self.run(inputs)
            self.synchronize()
            return outputs

        return [call] * setting.callers

    def profile(self, inputs: Any, calls: int, work_dir: Path) -> Profile | None:
        """`calls` runs of `inputs` under the runtime's own profiler (`segbench run --profile`), after the
        timing and never inside it: operators with their layer, precision and time (`bench.backend.profiling`).
        A runtime whose profiler must be switched on when the session is made builds a second, profiled
        session from the same artifact here. `work_dir` takes the profiler's own files (kept with the run
        for a closer look). None: this backend has no profiler, and the row says so."""
        return None

    def notes(self) -> str:
        """What happened when this session was loaded in this run (a compile and its time, say): the row's
        notes must describe this run, not the run that built a cached artifact."""
        return ""

    def reset_device_memory(self) -> None:
        """Reset the device allocator's peak counter; nothing to do on CPU."""

    def device_memory_peak(self) -> tuple[float, str] | None:
        """(peak MiB on the device since the reset, method), or None on CPU."""
        return None


class Backend(ABC):
    """The contract every backend, built in or from a plugin, fulfils.

    Class attributes: `name` (the registry name), `precisions` (the first is the default), `devices`,
    and `Options`, a frozen `BackendOptions` dataclass (default `NoOptions`), parsed once in the parent.
    What the harness must know of a backend without running it, it reads from the backend's own
    declarations, never from a list of names: `float_counterparts` (the float cells its int8 cells are
    judged against), `libraries` (the distributions whose versions key its artifacts and are recorded in
    env.json and the report) and `takes_onnx` (whether a user's `--onnx` file replaces its export).

    `prepare(ctx, out_dir)` writes the artifact's files into `out_dir` and returns metadata (JSON-able)
    kept beside them. It runs in a worker process of its own, with torch's threads set to the run's.
    Reserved metadata keys (`RESERVED_META_KEYS`): "coverage" (an `OpCoverage` of the deployed artifact,
    stored by the harness and read back by `coverage`), "notes" (one line carried into the row); the
    harness writes "options", "key" and "prepare_s" itself.

    `load(artifact, device, threads)` returns a `Session` in a fresh process; it must fix the runtime's
    intra-op threads to `threads` (and inter-op to 1 where the runtime has such a pool), since timings
    are only comparable at a fixed, recorded thread count. Compilation or warm-up belongs in `load` or
    `Session.to_input`, never in `Session.run`, which is what is timed.

    An int8 backend must report, through "coverage", which operators really run in int8 after the
    runtime's own fusions and which stayed in float; an int8 artifact without coverage, or with no int8
    operator, is an error row, never a silent fp32 success.

    A quantizing backend that can keep chosen layers in float (`segbench tune`) has a `float_layers`
    option (comma-separated module paths, `bench.backend.layers`), lists the layers it quantizes in
    `quantizable_layers(ctx)` and may report each layer's output SQNR against the float model in
    `layer_sqnr(ctx, images)` (the cheap proxy the tuner ranks against the measured sensitivity).

    `unavailable_reason(device)` says why the backend cannot run here (a missing package, no CUDA
    device); the row then reads `unavailable: <reason>` and no number is invented. It is asked once
    per run in the parent, and once more in the measuring worker before its memory baseline is read
    (so it must be cheap and may import the runtime: that import belongs to the baseline).

    `Session.profile(inputs, calls, work_dir)` (for `--profile`) runs the session under the runtime's own
    profiler and returns a `bench.backend.profiling.Profile`: each operator's time with the module path of
    the layer it implements and the precision it ran in; the default, None, makes the row say the backend
    has no profiler.

    `Session.throughput_settings(batch_sizes, threads)` and `Session.callers(setting, batch)` (for
    `--scenario offline|server`, docs/scenarios.md): the ways the runtime can run for throughput (batch
    sizes, concurrent calls, its own streams or requests), and for one of them the blocking calls to make
    at once from as many threads. The default runs this session's `run` from `threads` threads where
    `Session.concurrent_runs` allows it; a `run` that is not safe from several threads sets it False.

    `gradcam(artifact, request)` explains the backend's own predictions (None: it cannot, and the row
    says so); `bench.gradcam` holds the methods a backend can use.

    The artifact cache key covers the checkpoint, the backend's name, precision, device and options,
    the calibration data, the input shape, a user's ONNX file, the source of the backend's module and
    of the model's with every project module they import, and the numerical libraries' versions
    (`bench.run.artifacts.artifact_key`); a hit changes no number except the set-up time.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    devices: ClassVar[tuple[str, ...]]
    Options: ClassVar[type[BackendOptions]] = NoOptions
    # (backend, precision) of the float cells an int8 cell of this backend is compared with, in the
    # report's profiles and the decision ("quantizing does not pay here"): the first that ran in the same
    # group; none ran, or none declared (a runtime with no float backend of its own): torch-eager fp32.
    float_counterparts: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Distributions (as pip names them) whose versions change this backend's artifacts: an upgrade
    # rebuilds them, and env.json and the report's "Libraries" line name their versions.
    libraries: ClassVar[tuple[str, ...]] = ()
    # Whether the artifact is built from an ONNX graph that a user's own file (`--onnx`) can replace.
    takes_onnx: ClassVar[bool] = False

    @property
    def default_precision(self) -> str:
        return self.precisions[0]

    def parse_options(self, given: Mapping[str, str]) -> BackendOptions:
        """The user's `--option` strings as this backend's typed options, checked."""
        return self.Options.parse(self.name, given)

    def artifact_options(self, artifact: Artifact) -> BackendOptions:
        """The options an artifact was prepared with, typed again."""
        return self.Options.parse(self.name, artifact.options)

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        """Operators that run in int8 vs float in the deployed artifact, as `prepare` recorded them."""
        return OpCoverage.from_meta(artifact.meta.get("coverage"))

    def notes(self, artifact: Artifact) -> str:
        """A short remark carried into the row (deprecations, compile time, fallbacks)."""
        return str(artifact.meta.get("notes", ""))

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> GradcamMaps | Sequence[GradcamMaps] | None:
        """Grad-CAM maps computed by this backend's own arithmetic (autograd, finite differences on its
        graph cut at the feature layer, or a fake-quant simulation with its quantization parameters).
        A quantized backend answers with every method of `request.methods` it can run and, for finite
        differences, the maps at `request.steps` and at each of `request.floor_steps`.

        None means the backend cannot explain itself; the row then says so instead of borrowing the
        float model's maps, which would hide exactly the drift Grad-CAM is meant to show."""
        return None

    def quantizable_layers(self, ctx: PrepareContext) -> list[QuantLayer] | None:
        """The layers this backend quantizes and can keep in float through its `float_layers` option;
        None: it cannot keep chosen layers in float."""
        return None

    def layer_sqnr(self, ctx: PrepareContext, images: np.ndarray) -> dict[str, float] | None:
        """SQNR in dB of each quantizable layer's output in the all-int8 model against the float model's,
        on `images` (by the runtime's own numeric debugging tools); None where this backend has none."""
        return None

    def accuracy_control(
        self,
        ctx: PrepareContext,
        images: np.ndarray,
        score: Callable[[np.ndarray, np.ndarray], float],
        max_drop: float,
        out_dir: Path,
    ) -> AccuracyControlResult | None:
        """The runtime's own accuracy-aware quantization, the peer `segbench tune` reports beside its
        fallback: quantize keeping in float as few layers as it needs for `score` to drop at most
        `max_drop` below the float model's. `score(logits, indices)`: higher is better, of the (n, C, H, W)
        logits of `images[indices]` (a runtime may score subsets, one image at a time to rank layers).
        The model it returns is written into `out_dir`, and the result's `options` deploy exactly that
        model when added to this backend's options (so it is timed and scored like any variant).
        None where the runtime has no such tool."""
        return None

    def unavailable_reason(self, device: str) -> str | None:
        """None when the backend can run on `device` here, else why not."""
        if device not in self.devices:
            return f"{self.name} does not support device '{device}' (supports {', '.join(self.devices)})"
        return None

    @abstractmethod
    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        """Write the artifact's files into `out_dir`; return metadata to keep with it."""

    @abstractmethod
    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        """Load for running; options are in `artifact.options` (typed: `artifact_options`)."""
