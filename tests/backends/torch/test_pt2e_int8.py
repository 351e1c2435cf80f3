"""The torchao PT2E int8 backend on a small U-Net with random weights (no training needed).

Graph-level checks run on the converted program without compiling; the ones that go through
`torch.compile` (prepare and load both compile) are marked slow.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchao")

from backends.torch.pt2e_int8 import (  # noqa: E402
    MODEL_FILE,
    TorchaoPt2eInt8Backend,
    pt2e_coverage,
    quantize,
    reconcile,
    save_program,
)
from bench.backend import Artifact, OpCoverage  # noqa: E402
from bench.models import create_model  # noqa: E402
from tests.helpers import int8_sums_saturate, prepare  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration

UNET_INT8 = {"conv2d+relu": 18, "conv2d": 1, "max_pool2d": 4}  # every Conv2d; the head has no ReLU
UNET_FLOAT = {"conv_transpose2d": 4, "cat": 4}  # not annotated by X86InductorQuantizer


@pytest.fixture(scope="module")
def model_and_calibration():
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    return model, calibration


@pytest.fixture(scope="module")
def converted(model_and_calibration):
    model, calibration = model_and_calibration
    return quantize(model, torch.from_numpy(calibration))


def test_converted_graph_has_int8_convs_and_float_transposed_convs(converted):
    found = pt2e_coverage(converted)
    assert found.int8 == UNET_INT8
    assert found.float == UNET_FLOAT
    assert found.boundaries["dequantize_per_channel"] == 19  # per-channel int8 weights, one per conv


def test_graph_without_quantize_ops_has_no_int8_coverage(model_and_calibration):
    """The silently-fp32 trap: a graph that reached convert unannotated holds no quantize op, and the
    coverage must then be empty so the runner turns the cell into an error."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    model, calibration = model_and_calibration
    example = torch.from_numpy(calibration[:2])
    exported = torch.export.export(model, (example,), strict=True).module()
    assert pt2e_coverage(exported).int8 == {}
    unannotated = quantize(model, torch.from_numpy(calibration[:2]), quantizer=X86InductorQuantizer())  # no config set
    found = pt2e_coverage(unannotated)
    assert not found.boundaries and found.int8 == {}
    assert found.float["conv2d"] == 19
    meta = {"coverage": reconcile(found, {})}
    assert TorchaoPt2eInt8Backend().coverage(Artifact(Path("."), meta)).int8_count == 0


def test_convs_inductor_did_not_fuse_count_as_float():
    found = OpCoverage(int8=dict(UNET_INT8), float=dict(UNET_FLOAT))
    assert reconcile(found, {"qconv_weight_prepack_matcher_count": 19}) == found
    none_fused = reconcile(found, {"qmaxpool2d_matcher_count": 4})
    assert none_fused.int8 == {"max_pool2d": 4}
    assert none_fused.float == {**UNET_FLOAT, "conv2d+relu": 18, "conv2d": 1}


def test_saved_program_holds_int8_weights_and_runs_without_the_float_model(model_and_calibration, converted, tmp_path):
    model, calibration = model_and_calibration
    x = torch.from_numpy(calibration[:3])
    with torch.no_grad():
        expected = converted(x)
    program = save_program(converted, x[:2], tmp_path / MODEL_FILE)
    dtypes = {str(t.dtype) for t in program.state_dict.values()}
    assert "torch.int8" in dtypes
    assert not any(
        name.endswith("weight") and name.startswith(("encoder", "decoder", "bottleneck", "head"))
        for name in program.state_dict
    )  # float conv weights were dropped, not saved beside int8
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert (tmp_path / MODEL_FILE).stat().st_size < 0.45 * fp32_bytes
    loaded = torch.export.load(str(tmp_path / MODEL_FILE)).module()
    with torch.no_grad():
        assert torch.allclose(loaded(x), expected, atol=1e-6)


@pytest.fixture(scope="module")
def prepared(model_and_calibration, tmp_path_factory):
    model, calibration = model_and_calibration
    return prepare(TorchaoPt2eInt8Backend(), tmp_path_factory.mktemp("artifact"), model, calibration)


@pytest.mark.slow
def test_compiled_int8_output_is_close_to_fp32_but_not_identical(model_and_calibration, prepared):
    model, calibration = model_and_calibration
    backend = TorchaoPt2eInt8Backend()
    session = backend.load(prepared, "cpu", threads=1)
    assert list(session.compile_s) == [(1, 1, 32, 32)] and session.compile_s[(1, 1, 32, 32)] > 0
    assert session.notes().startswith("compiled at load in this run: 1x1x32x32 in ")
    x = calibration[:3]  # a new batch size: compiled in to_input, outside the timed run
    int8 = session.to_numpy(session.run(session.to_input(x)))
    assert (3, 1, 32, 32) in session.compile_s
    with torch.no_grad():
        fp32 = model(torch.from_numpy(x)).numpy()
    assert int8.shape == fp32.shape == (3, 2, 32, 32)
    error = np.abs(int8 - fp32).max() / np.abs(fp32).max()
    assert 0 < error < 0.05  # observed about 0.01


@pytest.mark.slow
def test_inductor_fused_every_int8_conv_and_coverage_says_so(prepared):
    meta = prepared.meta
    assert meta["inductor_fusions"]["qconv_weight_prepack_matcher_count"] == 19
    # measured on 4 calibration images: 1.5e-4 here, against logits of order 1
    # 0.010 on an AVX2-only EPYC, whose oneDNN int8 convs sum products in saturating int16 (tests/helpers.py)
    bound = 0.05 if int8_sums_saturate() else 1e-3
    assert meta["compiled_vs_converted_max_abs"] < bound and meta["compiled_vs_converted_images"] == 4
    assert meta["compiled_max_abs_logit"] > 0
    coverage = TorchaoPt2eInt8Backend().coverage(prepared)
    assert (coverage.int8, coverage.float) == (UNET_INT8, UNET_FLOAT)
    assert [p.name for p in prepared.files] == [MODEL_FILE]
    assert meta["saved_bytes_by_dtype"]["int8"] > meta["saved_bytes_by_dtype"]["float32"]
    notes = TorchaoPt2eInt8Backend().notes(prepared)
    assert "19 int8 kernels" in notes and " s," not in notes  # no compile time: not of this run


def test_only_torchaos_cuda_extension_warnings_are_silenced(caplog) -> None:
    import logging

    logger = logging.getLogger("torchao")
    with caplog.at_level(logging.WARNING, logger="torchao"):
        logger.warning("Failed to load /venv/lib/python3.11/site-packages/torchao/_C_mxfp8.so: Could not load")
        logger.warning("Failed to load /elsewhere/model.so")
        logger.warning("some other torchao warning")
    assert [r.getMessage() for r in caplog.records] == [
        "Failed to load /elsewhere/model.so",
        "some other torchao warning",
    ]


def test_float_layers_leave_their_convs_unannotated(model_and_calibration):
    """`set_module_name_qconfig(name, None)`: those convs stay float in the converted graph."""
    from backends.torch.pt2e_int8 import default_quantizer

    model, calibration = model_and_calibration
    kept = quantize(model, torch.from_numpy(calibration), default_quantizer(("encoder.0.0", "encoder.1.2")))
    found = pt2e_coverage(kept)
    assert found.int8["conv2d+relu"] == UNET_INT8["conv2d+relu"] - 2
    assert found.float["conv2d"] == 2


def test_layer_sqnr_comes_from_the_pt2e_numeric_debugger(model_and_calibration):
    from bench.backend import PrepareContext

    model, calibration = model_and_calibration
    backend = TorchaoPt2eInt8Backend()
    ctx = PrepareContext("unet", model, calibration, (1, 32, 32), 2, "int8", "cpu", backend.parse_options({}))
    sqnr = backend.layer_sqnr(ctx, calibration[:2])
    assert "encoder.0.0" in sqnr and len(sqnr) >= 19
    assert all(np.isfinite(v) for v in sqnr.values())


def test_compile_mode_is_a_checked_option():
    from bench.errors import UsageError

    backend = TorchaoPt2eInt8Backend()
    assert backend.parse_options({"compile_mode": "max-autotune"}).compile_mode == "max-autotune"
    with pytest.raises(UsageError, match="compile_mode"):
        backend.parse_options({"compile_mode": "fastest"})


@pytest.fixture(scope="module")
def tiny():
    from tests.helpers import tiny_transformer

    model, calibration = tiny_transformer()
    return model, torch.from_numpy(calibration)


def test_coverage_counts_as_post_ops_only_what_inductor_fuses(tiny):
    """After an int8 conv or linear only relu/hardtanh/hardswish/silu (conv), relu/gelu (linear) or an add
    fuse into the kernel; a LayerNorm, a reshape or a GELU after an add run on its float output. The
    depthwise conv is told apart."""
    from backends.torch.pt2e_int8 import default_quantizer

    model, calibration = tiny
    found = pt2e_coverage(quantize(model, calibration, default_quantizer()))
    assert found.int8 == {"conv2d": 2, "conv2d (depthwise)": 1, "linear": 1, "linear+add": 1}
    assert {"layer_norm", "gelu", "softmax", "matmul", "flatten"} <= set(found.float)
    assert "dropout" not in found.float


def test_linear_option_makes_linears_float_or_dynamic(tiny):
    from backends.torch.pt2e_int8 import default_quantizer

    model, calibration = tiny
    floating = pt2e_coverage(quantize(model, calibration, default_quantizer(linear="float")))
    assert floating.float["linear"] == 2 and not any(label.startswith("linear") for label in floating.int8)
    assert floating.int8["conv2d"] == 2  # the convs keep the static config
    dynamic = quantize(model, calibration, default_quantizer(linear="dynamic"))
    found = pt2e_coverage(dynamic)
    assert found.boundaries["choose_qparams"] == 2  # each Linear's activation scale computed per call
    assert found.int8["linear"] + found.int8["linear+add"] == 2 and found.int8["conv2d"] == 2
    targets = {str(n.target) for n in dynamic.graph.nodes if n.op == "call_function"}
    assert "quantized_decomposed.quantize_per_tensor.default" in targets  # the convs' static activations
    # float_layers wins over `linear`, module by module
    kept = pt2e_coverage(quantize(model, calibration, default_quantizer(("query",), linear="dynamic")))
    assert kept.boundaries["choose_qparams"] == 1 and kept.float["linear"] == 1


def test_linear_option_is_checked():
    from bench.errors import UsageError

    backend = TorchaoPt2eInt8Backend()
    assert backend.parse_options({}).linear == "static"
    assert backend.parse_options({"linear": "dynamic"}).as_strings()["linear"] == "dynamic"
    with pytest.raises(UsageError, match="linear=int4 is not valid; expected one of static, dynamic, float"):
        backend.parse_options({"linear": "int4"})


def test_a_model_of_linears_alone_with_linear_float_fails_in_one_line(tmp_path):
    """Nothing left to quantize: prepare says why, before exporting or compiling, instead of leaving the
    runner an artifact without an int8 op (or worse, a silent fp32 row)."""

    class PerPixelLinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    calibration = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(RuntimeError) as failed:
        prepare(TorchaoPt2eInt8Backend(), tmp_path, PerPixelLinear().eval(), calibration, options={"linear": "float"})
    message = str(failed.value)
    assert "\n" not in message
    assert message == (
        "X86InductorQuantizer quantized nothing (1 Linear in the model; linear=float keeps every nn.Linear in "
        "float): the program would silently run in float"
    )


@pytest.mark.slow
def test_dynamic_linears_are_fused_by_inductor_and_match_the_uncompiled_program(tiny, tmp_path):
    model, calibration = tiny
    backend = TorchaoPt2eInt8Backend()
    artifact = prepare(backend, tmp_path, model, calibration.numpy(), options={"linear": "dynamic"})
    meta = artifact.meta
    assert meta["linear"] == "dynamic" and "nn.Linear dynamic" in meta["quantizer"]
    assert meta["inductor_fusions"]["qlinear_weight_prepack_matcher_count"] == 2
    assert meta["inductor_fusions"]["qconv_weight_prepack_matcher_count"] == 3
    # 0.34 of a logit of 1.0 on an AVX2-only EPYC (saturating int8 sums, tests/helpers.py): measured, recorded
    bound = 0.5 if int8_sums_saturate() else 1e-3
    assert meta["compiled_vs_converted_max_abs"] < bound * max(meta["compiled_max_abs_logit"], 1.0)
    assert "nn.Linear dynamic" in backend.notes(artifact)
