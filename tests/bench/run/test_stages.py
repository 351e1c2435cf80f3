"""A cell's measuring stages in one worker, on a stand-in backend whose session takes 2 ms a call: the
timed batch tiled from the split's first images, memory counted from the load, rounds kept in the worker
and the counted ones turned into the measurement, and the profiled pass last. The process's memory
readings are stand-ins too, so the test process's own high-water mark and allocator are left alone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import bench.backend
from bench.measure import memory
from bench.measure.timing import TimingConfig
from bench.run import stages
from bench.run.isolation import WorkerContext

CALL_NS = 2_000_000


class _Session:
    timer = "stand-in"

    def __init__(self) -> None:
        self.calls = 0
        self.log: list[str] = []

    def to_input(self, batch: np.ndarray) -> np.ndarray:
        return batch

    def time_call(self, inputs: np.ndarray) -> int:
        self.calls += 1
        return CALL_NS

    def reset_device_memory(self) -> None:
        self.log.append("reset device memory")

    def device_memory_peak(self) -> tuple[float, str]:
        return 12.5, "stand-in allocator"

    def notes(self) -> str:
        return "compiled in 0.1 s"

    def profile(self, inputs: np.ndarray, calls: int, work_dir: Path) -> tuple[int, int, Path]:
        return len(inputs), calls, work_dir


class _Backend:
    def __init__(self, session: _Session) -> None:
        self.session = session
        self.asked: list[str] = []

    def unavailable_reason(self, device: str) -> None:
        self.asked.append(f"unavailable on {device}?")

    def load(self, artifact: str, device: str, threads: int) -> _Session:
        self.asked.append(f"load {artifact} on {device} with {threads} threads")
        return self.session


class _Suite:
    def load(self, split: str) -> SimpleNamespace:
        return SimpleNamespace(images=np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1))

    def normalize(self, images: np.ndarray) -> np.ndarray:
        return images * 10


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> tuple[WorkerContext, Any, _Session, _Backend, list[str]]:
    session = _Session()
    backend = _Backend(session)
    said: list[str] = []

    def reset_peak_rss() -> str:
        said.append("reset peak")
        return "stand-in method"

    monkeypatch.setattr(bench.backend, "get_backend", lambda name: backend)
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: "stand-in allocator")
    monkeypatch.setattr(memory, "reset_peak_rss", reset_peak_rss)
    monkeypatch.setattr(memory, "current_rss_mib", lambda: 100.0)
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: 160.0)
    timing = TimingConfig(
        warmup_s=0, warmup_iters=3, min_time_s=0.01, min_iters=3, mode="sequential", priority="normal"
    )
    spec = SimpleNamespace(
        backend="stand-in",
        device="cpu",
        threads=2,
        split="evaluation",
        batch_size=5,
        timing=timing,
        load_suite=_Suite,
        profile_dir=None,
        profile_calls=7,
    )
    context = WorkerContext(state={}, stage=said.append)
    return context, spec, session, backend, said


def test_load_tiles_the_batch_and_counts_memory_from_before_the_session(worker):
    context, spec, session, backend, said = worker
    stages.load(context, spec, SimpleNamespace(artifact="artifact-dir"))  # type: ignore[arg-type]
    assert context.state["inputs"][:, 0, 0, 0].tolist() == [0.0, 10.0, 20.0, 0.0, 10.0]  # 3 images, batch 5
    assert backend.asked == ["unavailable on cpu?", "load artifact-dir on cpu with 2 threads"]
    assert said == ["load", "reset peak"] and session.log == ["reset device memory"]
    assert {k: context.state[k] for k in ("memory_method", "allocator", "baseline_rss_mib")} == {
        "memory_method": "stand-in method",
        "allocator": "stand-in allocator",
        "baseline_rss_mib": 100.0,
    }


def test_rounds_stay_in_the_worker_and_only_the_counted_ones_are_measured(worker):
    context, spec, session, _, said = worker
    stages.load(context, spec, SimpleNamespace(artifact="a"))  # type: ignore[arg-type]
    stages.warm_up(context, spec)
    assert session.calls == 3 and context.state["samples"] == []
    # a round: 2 untimed calls, then 2 ms calls until 10 ms and 3 calls: 5 samples
    assert stages.time_round(context, spec) == (5, pytest.approx(0.01), 2.0)
    assert stages.time_round(context, spec) == (5, pytest.approx(0.01), 2.0)
    assert session.calls == 3 + 2 * (2 + 5)
    assert context.state["timing_priority"].startswith("normal")
    measured = stages.measurement(context, spec, rounds=[1])
    assert measured.samples_ns.tolist() == [CALL_NS] * 5 and measured.sample_rounds.tolist() == [1] * 5
    assert (measured.peak_rss_mib, measured.baseline_rss_mib, measured.backend_rss_mib) == (160.0, 100.0, 60.0)
    assert (measured.peak_device_mib, measured.device_memory_method) == (12.5, "stand-in allocator")
    assert (measured.timer, measured.session_notes, measured.batch_size) == ("stand-in", "compiled in 0.1 s", 5)
    assert said[-1] == "reset peak"  # the evaluation's peak is its own
    assert stages.evaluation_peak(context) == 160.0


def test_the_profiled_pass_needs_a_folder_and_runs_the_loaded_session(worker, tmp_path: Path):
    context, spec, _, _, said = worker
    stages.load(context, spec, SimpleNamespace(artifact="a"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a profiled cell needs a folder for its profiler files"):
        stages.profile(context, spec)
    spec.profile_dir = tmp_path / "profiles" / "cell-1"
    assert stages.profile(context, spec) == (5, 7, spec.profile_dir)  # type: ignore[comparison-overlap]
    assert spec.profile_dir.is_dir() and said[-1] == "profile"
