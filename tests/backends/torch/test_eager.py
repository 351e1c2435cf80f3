import numpy as np
import torch

from backends.torch.eager import TorchEagerBackend
from bench.models import create_model
from tests.helpers import prepare


def test_round_trip_reproduces_the_float_model_exactly(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    backend = TorchEagerBackend()
    artifact = prepare(backend, tmp_path, model, x)
    session = backend.load(artifact, "cpu", threads=1)
    out = session.to_numpy(session.run(session.to_input(x)))
    with torch.no_grad():
        assert np.array_equal(out, model(torch.from_numpy(x)).numpy())
    assert artifact.size_bytes > 4 * sum(p.numel() for p in model.parameters())  # fp32 weights on disk


def test_cuda_is_unavailable_with_a_reason_without_a_gpu():
    if torch.cuda.is_available():
        assert TorchEagerBackend().unavailable_reason("cuda") is None
    else:
        assert TorchEagerBackend().unavailable_reason("cuda") == "torch reports no CUDA device"


def test_half_precisions_are_close_to_fp32_and_half_the_size(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    backend = TorchEagerBackend()
    sizes = {}
    for precision, tolerance in (("fp32", 1e-6), ("bf16", 2e-2), ("fp16", 5e-3)):
        folder = tmp_path / precision
        folder.mkdir()
        artifact = prepare(backend, folder, model, x, precision=precision, options={"channels_last": "true"})
        session = backend.load(artifact, "cpu", threads=1)
        out = session.to_numpy(session.run(session.to_input(x)))
        error = np.abs(out - ref).max() / np.abs(ref).max()
        assert error < tolerance, (precision, error)
        if precision != "fp32":
            assert error > 0  # really ran in reduced precision
        sizes[precision] = artifact.size_bytes
    assert sizes["bf16"] < 0.55 * sizes["fp32"] and sizes["fp16"] < 0.55 * sizes["fp32"]


def test_its_throughput_comes_from_the_batch_alone(tmp_path):
    """--scenario offline: torch runs one caller with all the run's threads; only the batch changes."""
    from bench.backend import ThroughputSetting

    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    backend = TorchEagerBackend()
    session = backend.load(prepare(backend, tmp_path, model, x), "cpu", threads=1)
    assert session.throughput_settings((1, 4), threads=2) == [ThroughputSetting(1, 1), ThroughputSetting(4, 1)]
    [call] = session.callers(ThroughputSetting(4, 1), x)
    with torch.no_grad():
        np.testing.assert_array_equal(call().numpy(), model(torch.from_numpy(x)).numpy())
