"""The zoo models (DeepLabV3+ ResNet-18 and MobileNetV2, HRNetV2-W18-Small, VGG16-UNet, LR-ASPP
MobileNetV3-Large) with random weights: output
size, graph capture (FX, torch.export, ONNX), every CPU backend including the int8 ones, Grad-CAM
layers, and parameter counts against the published ones."""

from __future__ import annotations

import ast

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from backends.torch.fakequant import module_paths
from bench.backend import get_backend
from bench.models import create_model
from bench.models.mobilenet import MobileNetV2Encoder
from tests.helpers import prepare

ZOO = (
    "deeplabv3plus-resnet18",
    "hrnet-w18-small",
    "vgg16-unet",
    "deeplabv3plus-mobilenetv2",
    "lraspp-mobilenetv3",
)
SHAPE = (3, 64, 64)  # (C, H, W) for the graph-capture and backend tests
CLASSES = 2
# Published sizes: ResNet-18 encoder 11.2 M + separable ASPP/decoder (smp's DeepLabV3+ resnet18: 12.3 M);
# HRNetV2-W18-Small-v2: 3.9 M; VGG-16 convs 14.7 M + U-Net decoder 11.1 M; MobileNetV2 features 1.81 M + the
# same separable head on 320 channels (2.7 M); torchvision's lraspp_mobilenet_v3_large: 3.22 M (21 classes).
PARAMETERS_M = {
    "deeplabv3plus-resnet18": (12.0, 16.0),
    "hrnet-w18-small": (1.0, 4.0),
    "vgg16-unet": (20.0, 30.0),
    "deeplabv3plus-mobilenetv2": (2.0, 6.0),
    "lraspp-mobilenetv3": (3.0, 3.5),
}
# Exact counts of torchvision's modules (3 input channels): mobilenet_v2's 3,504,872 less its classifier
# (1,281,000) and final 1x1 conv to 1280 (412,160), which DeepLab leaves out; lraspp_mobilenet_v3_large
# with its 21 classes. Equal counts check the layer tables block by block.
TORCHVISION_COUNTS = {
    "mobilenet_v2.features[:18]": (lambda: MobileNetV2Encoder(3), 1_811_712),
    "lraspp_mobilenet_v3_large": (lambda: create_model("lraspp-mobilenetv3", 3, 21), 3_221_538),
}


def _model(name: str, in_channels: int = SHAPE[0], num_classes: int = CLASSES) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels, num_classes).eval()


@pytest.fixture(scope="module")
def calibration() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, *SHAPE)).astype(np.float32)


def _relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(out - ref).max() / np.abs(ref).max())


# ---------------------------------------------------------------- shapes and graph capture


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", ZOO)
def test_logits_have_the_input_size(name, in_channels):
    model = _model(name, in_channels, num_classes=3)
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, 64, 96))
    assert out.shape == (2, 3, 64, 96)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ZOO)
def test_fx_symbolic_trace_reproduces_eager(name):
    model = _model(name)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
@pytest.mark.parametrize("name", ZOO)
def test_torch_export_with_a_dynamic_batch(name, strict):
    model = _model(name)
    example = torch.randn(2, *SHAPE)
    program = torch.export.export(
        model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), strict=strict
    )
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)
    # The PT2E Grad-CAM simulation finds each layer through the graph's module stacks.
    assert set(model.gradcam_layers.values()) <= set(module_paths(program.graph))


# ---------------------------------------------------------------- backends


def _prepare_and_run(backend_name: str, model_name: str, calibration: np.ndarray, out_dir, batch: int = 2):
    backend = get_backend(backend_name)
    assert backend.unavailable_reason("cpu") is None
    model = _model(model_name)
    artifact = prepare(backend, out_dir, model, calibration, model_name=model_name, num_classes=CLASSES)
    session = backend.load(artifact, "cpu", 1)
    x = calibration[:batch]
    out = session.to_numpy(session.run(session.to_input(x)))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return backend, artifact, out, ref


@pytest.mark.parametrize("name", ZOO)
def test_torch_eager_backend_reproduces_the_model(name, calibration, tmp_path):
    _, _, out, ref = _prepare_and_run("torch-eager", name, calibration, tmp_path)
    assert out.shape == ref.shape == (2, CLASSES, *SHAPE[1:])
    assert _relative_error(out, ref) < 1e-5  # same weights; only the thread count may differ


def _name_scopes(graph: onnx.GraphProto) -> set[str]:
    """Module paths the dynamo exporter records on each node (`pkg.torch.onnx.name_scopes`)."""
    found: set[str] = set()
    for node in graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.name_scopes":
                found.update(ast.literal_eval(prop.value))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_onnx_export_has_a_dynamic_batch_and_ort_reproduces_the_model(name, calibration, tmp_path):
    """The `ort` backend's graph is `backends.onnx.export.export_onnx` (exported at batch 1), run at batch 2."""
    model = _model(name)
    _, artifact, out, ref = _prepare_and_run("ort", name, calibration, tmp_path)
    graph = onnx.load(str(artifact.directory / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert out.shape == ref.shape == (2, CLASSES, *SHAPE[1:])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    assert set(model.gradcam_layers.values()) <= _name_scopes(graph)  # Grad-CAM layers are named in the graph


# PT2E's Inductor compile of the two mobile graphs cost 2-3 min each here (the compile, not the input size:
# 55 s at 64x64, 58 s at 32x32 for DeepLab MobileNetV2 alone), more than the rest of their cases together;
# both quantized and ran under PT2E when the models were added, and the CI time keeps them out. HRNet's
# PT2E case too: 204 s on a 2-vCPU AVX2-only EPYC (2026-12-07), the third slowest test of the suite, whose
# CI ran 68 min there; it passed on the VNNI and on the AVX2 EPYC, and PT2E's export,
# annotation and compile are still run here on the ResNet-18 DeepLab and VGG16-UNet.
PT2E_LEFT_OUT = ("deeplabv3plus-mobilenetv2", "lraspp-mobilenetv3", "hrnet-w18-small")
INT8_CASES = [
    (name, backend)
    for name in ZOO
    for backend in ("ort-qdq-int8", "torch-fx-int8", "torchao-pt2e-int8")
    if not (backend == "torchao-pt2e-int8" and name in PT2E_LEFT_OUT)
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "backend_name"), INT8_CASES)
def test_int8_backends_quantize_and_run(name, backend_name, calibration, tmp_path):
    # batch 1, the shape PT2E compiles at load: another batch would cost one more Inductor compile
    # (~1-2 min for HRNet); batches other than the compiled one are tested on the unet in tests/backends
    backend, artifact, out, ref = _prepare_and_run(backend_name, name, calibration, tmp_path, batch=1)
    assert out.shape == ref.shape == (1, CLASSES, *SHAPE[1:])
    assert np.isfinite(out).all()
    coverage = backend.coverage(artifact)
    assert coverage is not None and coverage.int8_count > 0, coverage
    assert _relative_error(out, ref) > 0  # really quantized
    # Random weights, so only a loose bound (measured >= 0.97 for every pair; FX on vgg16-unet needs three
    # of its transposed convs kept in float, where x86's int8 kernel was off by ~1.4, to get there).
    assert (out.argmax(1) == ref.argmax(1)).mean() > 0.9


def test_tensorrt_int8_says_why_it_cannot_run_here():
    backend = get_backend("tensorrt-int8")
    reason = backend.unavailable_reason("cuda")
    if reason is None:
        pytest.skip("TensorRT and CUDA are both present: tests/backends/test_tensorrt.py builds real engines")
    assert isinstance(reason, str) and reason.strip()
    assert backend.unavailable_reason("cpu")  # a CUDA-only backend never runs on CPU


# ---------------------------------------------------------------- Grad-CAM layers


@pytest.mark.parametrize("name", (*ZOO, "unet"))
def test_gradcam_layers_resolve_and_the_head_rebuilds_the_logits_from_its_inputs(name):
    model = _model(name)
    layers = model.gradcam_layers
    assert len(layers) >= 3 and model.gradcam_layer in layers.values()
    # what the head reads: the default layer, or (LR-ASPP) `head(gate, low)`, whose default layer lies
    # before the low features both branches depend on
    head_inputs = tuple(getattr(model, "gradcam_head_inputs", (model.gradcam_layer,)))
    outputs: dict[str, list[torch.Tensor]] = {path: [] for path in (*layers.values(), *head_inputs)}
    handles = [
        model.get_submodule(path).register_forward_hook(lambda module, args, out, path=path: outputs[path].append(out))
        for path in outputs
    ]
    x = torch.randn(1, *SHAPE)
    with torch.no_grad():
        logits = model(x)
    for handle in handles:
        handle.remove()
    for path, seen in outputs.items():
        assert len(seen) == 1, f"{path} ran {len(seen)} times"
        if path not in layers.values():
            continue
        assert seen[0].ndim == 4 and seen[0].shape[0] == 1, path
        assert (seen[0] >= 0).all(), f"{path} is not a ReLU output"
    with torch.no_grad():  # the head, and at most a resize, is all that lies between its inputs and the logits
        rebuilt = model.head(*[outputs[path][0] for path in head_inputs])
        rebuilt = F.interpolate(rebuilt, size=x.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(rebuilt, logits)


# ---------------------------------------------------------------- size


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_is_in_the_published_ballpark(name):
    count = sum(p.numel() for p in _model(name).parameters()) / 1e6
    low, high = PARAMETERS_M[name]
    print(f"{name}: {count:.2f} M parameters")
    assert low <= count <= high


@pytest.mark.parametrize("reference", TORCHVISION_COUNTS)
def test_mobile_layer_tables_match_torchvision_parameter_for_parameter(reference):
    build, expected = TORCHVISION_COUNTS[reference]
    assert sum(p.numel() for p in build().parameters()) == expected
