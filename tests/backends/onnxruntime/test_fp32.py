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
