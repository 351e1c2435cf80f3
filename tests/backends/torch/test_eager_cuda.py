"""CUDA paths of torch-eager: event timing on the session's stream, fp16/bf16, device memory."""

import time

import numpy as np
import pytest
import torch

from backends.torch.eager import TorchEagerBackend
from bench.models import create_model
from tests.helpers import prepare

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def _session(tmp_path, precision: str):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((4, 1, 256, 256)).astype(np.float32)
    backend = TorchEagerBackend()
    artifact = prepare(backend, tmp_path, model, x, precision=precision, device="cuda")
    return model, x, backend.load(artifact, "cuda", threads=1)


@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-3), ("fp16", 2e-2), ("bf16", 5e-2)])
def test_cuda_precisions_match_cpu_fp32(tmp_path, precision, tolerance):
    model, x, session = _session(tmp_path, precision)
    out = session.to_numpy(session.run(session.to_input(x)))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(out - ref).max() / np.abs(ref).max() < tolerance


def test_cuda_event_timing_agrees_with_synchronized_wall_clock(tmp_path):
    _, x, session = _session(tmp_path, "fp32")
    inputs = session.to_input(x)
    for _ in range(10):
        session.time_call(inputs)
    events = [session.time_call(inputs) for _ in range(50)]
    walls = []
    for _ in range(50):
        start = time.perf_counter_ns()
        session.run(inputs)
        session.synchronize()
        walls.append(time.perf_counter_ns() - start)
    assert session.timer == "cuda_event"
    ratio = np.median(events) / np.median(walls)
    assert 0.5 < ratio <= 1.1, f"event/wall median ratio {ratio:.3f}"


def test_device_memory_peak_is_reported(tmp_path):
    _, x, session = _session(tmp_path, "fp32")
    session.reset_device_memory()
    session.run(session.to_input(x))
    session.synchronize()
    peak, method = session.device_memory_peak()
    assert peak > 1 and method == "torch.cuda.max_memory_allocated"


def test_end_to_end_latency_adds_the_copies_to_the_compute(tmp_path):
    """Host batch to host logits (4 x 256 x 256 in, 4 x 2 x 256 x 256 out): never less than the compute
    alone, and as much more as the two copies take (each measured on its own here)."""
    _, x, session = _session(tmp_path, "fp32")
    inputs = session.to_input(x)
    for _ in range(10):
        session.time_call(inputs)
        session.time_end_to_end(x)
    compute = np.median([session.time_call(inputs) for _ in range(50)])
    end_to_end = np.median([session.time_end_to_end(x) for _ in range(50)])
    copies = []
    for _ in range(50):
        start = time.perf_counter_ns()
        session.to_numpy(session.to_input(x))
        session.synchronize()
        copies.append(time.perf_counter_ns() - start)
    assert end_to_end > compute
    assert end_to_end == pytest.approx(compute + np.median(copies), rel=0.5)
