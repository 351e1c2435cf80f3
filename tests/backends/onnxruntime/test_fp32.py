import sys

import numpy as np
import pytest
import torch

from backends.onnxruntime.fp32 import MODEL_FILE, OrtFp32Backend
from backends.onnxruntime.session import ort_unavailable_reason
from bench.models import create_model
from tests.helpers import prepare

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


def test_ort_fp32_matches_torch_and_has_no_int8(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    backend = OrtFp32Backend()
    artifact = prepare(backend, tmp_path, model, x)
    session = backend.load(artifact, "cpu", threads=1)
    out = session.to_numpy(session.run(session.to_input(x)))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4
    assert [p.name for p in artifact.files] == [MODEL_FILE]
    assert artifact.size_bytes > 4 * sum(p.numel() for p in model.parameters())  # weights embedded, fp32
    assert backend.coverage(artifact) is None


def test_without_onnxruntime_the_backend_names_the_extras_that_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ModuleNotFoundError
    assert OrtFp32Backend().unavailable_reason("cpu") == (
        "onnxruntime is not installed (pip install 'segbench[cpu]', or 'segbench[gpu]' for CUDA)"
    )


def test_the_cpu_build_of_onnxruntime_is_unavailable_on_cuda(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_unavailable_reason("cpu") is None
    assert ort_unavailable_reason("cuda") == (
        "onnxruntime has no CUDAExecutionProvider (the CPU build; 'segbench[gpu]' in its place: docs/install.md)"
    )


def test_its_throughput_settings_are_sessions_sharing_the_threads_and_each_runs_the_model(tmp_path):
    """--scenario offline: one session with every thread, or k sessions of threads / k each, run at once;
    every caller computes what the timed session computes."""
    from bench.backend import ThroughputSetting

    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    backend = OrtFp32Backend()
    session = backend.load(prepare(backend, tmp_path, model, x), "cpu", threads=2)
    settings = session.throughput_settings((1, 2), threads=2)
    assert [s.describe() for s in settings] == [
        "batch 1, 1 caller, 1 session x 2 threads",
        "batch 1, 2 callers, 2 sessions x 1 thread",
        "batch 2, 1 caller, 1 session x 2 threads",
        "batch 2, 2 callers, 2 sessions x 1 thread",
    ]
    expected = session.to_numpy(session.run(session.to_input(x)))
    callers = session.callers(ThroughputSetting(2, 2, "2 sessions x 1 thread"), x)
    assert len(callers) == 2 and callers[0] is not callers[1]
    for call in callers:
        np.testing.assert_allclose(call()[0], expected, atol=1e-5)
    assert len(session.throughput_settings((1,), threads=1)) == 1  # one thread: nothing to share
