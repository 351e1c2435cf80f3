import numpy as np
import torch

from backends.torch_eager import TorchEagerBackend
from bench.backend import Artifact, PrepareContext
from bench.models import create_model


def test_round_trip_reproduces_the_float_model_exactly(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    ctx = PrepareContext(model_name="unet", model=model, calibration=x, input_shape=(1, 32, 32), num_classes=2,
                         precision="fp32", device="cpu")
    backend = TorchEagerBackend()
    artifact = Artifact(tmp_path, backend.prepare(ctx, tmp_path))
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
