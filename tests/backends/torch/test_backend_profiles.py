"""`Session.profile` of the three torch backends on one small conv model: outermost ops, each call's
ops counted once, the layers they belong to, their precision, and whether the ops account for an
unprofiled call (at least 80% of its lower decile: a profile that misses the work says nothing about it).

The model runs a few ms per call at 2 threads; its two `mid` convs have the same weight and input
shapes, so only their order tells them apart where layers are matched by shapes (PT2E). PT2E runs it on
larger images: Dynamo's guards and Inductor's Python wrapper cost it about 0.3-0.5 ms per call outside
any operator, which would be a fifth of a 2 ms call."""

import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from backends.torch.eager import TorchEagerSession
from backends.torch.fx_int8 import TorchFxInt8Backend
from bench.backend import Profile, Session
from tests.helpers import prepare

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

THREADS = 2
CALLS = 10
SIZE = 224
PT2E_SIZE = 320
CONVS = ("stem.0", "down.0", "mid.0", "mid.2", "head")  # every Conv2d by module path
MIN_OPS_VS_CALL = 0.8


class SmallSeg(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.head = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.stem(x)
        x = self.mid(self.pool(self.down(skip)))
        return self.head(torch.cat([self.up(x), skip], 1))


@pytest.fixture(scope="module")
def model_and_images() -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    images = np.random.default_rng(0).standard_normal((8, 3, SIZE, SIZE)).astype(np.float32)
    return SmallSeg().eval(), images


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def _fast_call_us(session: Session, x, calls: int = 30) -> float:
    # the lower decile, not the median: another process can only make calls slower
    return statistics.quantiles([session.time_call(x) for _ in range(calls)], n=10)[0] / 1e3


def _profiled(session: Session, x, work_dir: Path) -> tuple[Profile, float]:
    """The profile and an unprofiled call's lower-decile time (the quieter of one taken before and one after: the
    profile is compared with the call itself, not with a neighbour's load)."""
    before = _fast_call_us(session, x)
    profile = session.profile(x, CALLS, work_dir)
    assert profile is not None
    return profile, min(before, _fast_call_us(session, x))


def _check_counts_and_time(profile: Profile, call_us: float, work_dir: Path) -> None:
    assert profile.method == "torch.profiler" and profile.calls == CALLS
    assert profile.ops and all(op.calls % CALLS == 0 and op.total_us > 0 for op in profile.ops)
    assert profile.ops_us <= profile.wall_us  # exclusive: ops never add up past the wall time
    assert profile.ops_us / CALLS >= MIN_OPS_VS_CALL * call_us, (profile.ops_us / CALLS, call_us)
    assert (work_dir / "torch_profiler_trace.json").exists()


def _rows(profile: Profile) -> dict[tuple[str, str], object]:
    return {(op.name, op.layer): op for op in profile.ops}


def test_eager_ops_are_attributed_by_module_hooks(model_and_images, two_threads, tmp_path):
    model, images = model_and_images
    session = TorchEagerSession(model, "cpu", torch.float32, channels_last=False)
    x = session.to_input(images[:1])
    profile, call_us = _profiled(session, x, tmp_path)
    _check_counts_and_time(profile, call_us, tmp_path)
    rows = _rows(profile)
    for layer in CONVS:
        assert rows["aten::conv2d", layer].calls == CALLS
    assert rows["aten::conv_transpose2d", "up"].category == "compute"
    assert rows["aten::relu", "mid.3"].calls == CALLS
    assert rows["aten::max_pool2d", "pool"].calls == CALLS
    assert rows["aten::cat", ""].calls == CALLS  # called by the root's forward: no leaf module
    assert {op.precision for op in profile.ops} == {"fp32"}
    assert not any(op.name in ("aten::convolution", "aten::mkldnn_convolution") for op in profile.ops)
    assert profile.attribution == "module hooks"
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())  # hooks removed


def test_eager_bf16_ops_say_bf16(model_and_images, two_threads, tmp_path):
    model, images = model_and_images
    half = SmallSeg().eval().to(torch.bfloat16)
    half.load_state_dict(model.state_dict())
    session = TorchEagerSession(half, "cpu", torch.bfloat16, channels_last=False)
    profile = session.profile(session.to_input(images[:1]), 2, tmp_path)
    assert {op.precision for op in profile.ops if op.name == "aten::conv2d"} == {"bf16"}
    assert {op.layer for op in profile.ops if op.name == "aten::conv2d"} == set(CONVS)


@pytest.fixture(scope="module")
def fx_artifact(model_and_images, tmp_path_factory):
    model, images = model_and_images
    return prepare(TorchFxInt8Backend(), tmp_path_factory.mktemp("fx"), model, images, model_name="small-seg")


def test_fx_int8_ops_are_attributed_in_torchscript_graph_order(fx_artifact, model_and_images, two_threads, tmp_path):
    _, images = model_and_images
    session = TorchFxInt8Backend().load(fx_artifact, "cpu", threads=THREADS)
    x = session.to_input(images[:1])
    profile, call_us = _profiled(session, x, tmp_path)
    _check_counts_and_time(profile, call_us, tmp_path)
    rows = _rows(profile)
    for layer in CONVS[:-1]:  # conv + ReLU fused into one int8 kernel, named after the conv
        op = rows["quantized::conv2d_relu", layer]
        assert (op.precision, op.calls, op.category) == ("int8", CALLS, "compute")
    assert rows["quantized::conv2d", "head"].precision == "int8"
    assert rows["aten::max_pool2d", "pool"].precision == "int8"
    assert rows["aten::cat", ""].precision == "int8"
    # the transposed conv runs int8, or in float when torch's int8 kernel is off (the backend checks)
    up = [op for op in profile.ops if op.layer == "up"]
    assert len(up) == 1 and "conv_transpose2d" in up[0].name and up[0].calls == CALLS
    assert up[0].precision == ("fp32" if fx_artifact.meta["float_modules"] else "int8")
    quantize = rows["aten::quantize_per_tensor", ""]
    assert quantize.category == "quantize" and quantize.precision == "fp32"
    assert quantize.calls == CALLS * (1 + len(fx_artifact.meta["float_modules"]))
    assert {op.layer for op in profile.ops} == {"", "pool", "up", *CONVS}
    assert profile.attribution == "TorchScript graph order" and "matched no node" not in profile.notes


@pytest.mark.slow
def test_pt2e_int8_convs_are_matched_to_layers_by_shapes_and_order(
    model_and_images, tmp_path_factory, two_threads, tmp_path
):
    pytest.importorskip("torchao")
    from backends.torch.pt2e_int8 import TorchaoPt2eInt8Backend

    model, _ = model_and_images
    images = np.random.default_rng(1).standard_normal((8, 3, PT2E_SIZE, PT2E_SIZE)).astype(np.float32)
    backend = TorchaoPt2eInt8Backend()
    artifact = prepare(backend, tmp_path_factory.mktemp("pt2e"), model, images, model_name="small-seg")
    session = backend.load(artifact, "cpu", threads=THREADS)
    x = session.to_input(images[:1])
    expected = session.to_numpy(session.run(x))
    profile, call_us = _profiled(session, x, tmp_path)
    _check_counts_and_time(profile, call_us, tmp_path)
    convs = {op.layer: op for op in profile.ops if op.name.startswith("onednn::qconv")}
    assert set(convs) == set(CONVS)  # mid.0 and mid.2 have the same shapes: told apart by order
    assert all(op.precision == "int8" and op.calls == CALLS for op in convs.values())
    assert _rows(profile)["quantized::max_pool2d", "pool"].precision == "int8"
    assert [op.layer for op in profile.ops if "convolution_transpose" in op.name] == ["up"]  # float, unannotated
    kernels = [op for op in profile.ops if op.op_type.startswith("cpp_fused")]
    assert kernels and all(op.layer == "" and op.calls == CALLS for op in kernels)  # fused: no layer
    assert "cpp.enable_kernel_profile" in profile.notes and "matched no op" not in profile.notes
    np.testing.assert_array_equal(session.to_numpy(session.run(x)), expected)  # the session is untouched
