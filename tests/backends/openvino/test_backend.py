"""The OpenVINO backends on a small U-Net with random weights: the IR, its precision, int8 coverage from
the runtime graph, layers kept in float, and `unavailable` without the package."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from backends.openvino.backend import OpenVinoFp32Backend, OpenVinoInt8Backend  # noqa: E402
from bench.backend import PrepareContext  # noqa: E402
from bench.errors import UsageError  # noqa: E402
from bench.models import create_model  # noqa: E402
from tests.helpers import int8_sums_saturate, prepare  # noqa: E402

# quantizes, compiles or exports in every test (or its module's fixtures): out of `make fast`
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("unet", 1, 2).eval()
    calibration = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    fp32 = prepare(OpenVinoFp32Backend(), tmp_path_factory.mktemp("ov"), model, calibration)
    int8 = prepare(OpenVinoInt8Backend(), tmp_path_factory.mktemp("ov-int8"), model, calibration)
    return model, calibration, fp32, int8


def _run(backend, artifact, images, threads=1):
    session = backend.load(artifact, "cpu", threads)
    return session.to_numpy(session.run(session.to_input(images))), session


def test_fp32_ir_is_both_files_full_precision_and_matches_torch(unet):
    model, calibration, fp32, _ = unet
    assert [p.name for p in fp32.files] == ["model.bin", "model.xml"]
    weights = sum(p.numel() for p in model.parameters())
    assert fp32.size_bytes > 3.9 * weights  # f32 weights, not save_model's default fp16 compression
    out, session = _run(OpenVinoFp32Backend(), fp32, calibration[:2])
    with torch.no_grad():
        expected = model(torch.from_numpy(calibration[:2])).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert "float layers in f32" in session.notes()  # the hint is set, whatever the CPU prefers


def test_a_new_batch_size_recompiles_outside_run(unet):
    _, calibration, fp32, _ = unet
    backend = OpenVinoFp32Backend()
    session = backend.load(fp32, "cpu", 1)
    for size in (1, 3, 1):
        assert session.to_numpy(session.run(session.to_input(calibration[:size]))).shape == (size, 2, 32, 32)


def test_int8_runs_convolutions_in_int8_per_the_runtime_graph(unet):
    model, calibration, fp32, int8 = unet
    coverage = OpenVinoInt8Backend().coverage(int8)
    assert coverage.int8["Convolution"] == 19 and coverage.int8["Deconvolution"] == 4  # 19 Conv2d, 4 ConvTranspose2d
    assert "Convolution" not in coverage.float
    assert int8.size_bytes < 0.5 * fp32.size_bytes  # int8 weights in model.bin
    out, _ = _run(OpenVinoInt8Backend(), int8, calibration[:2])
    with torch.no_grad():
        expected = model(torch.from_numpy(calibration[:2])).numpy()
    error = np.abs(out - expected).max() / np.abs(expected).max()
    assert 0 < error < 0.1
    assert "NNCF performance preset, 8 calibration images" in int8.meta["notes"]


def test_float_layers_go_to_the_ignored_scope_and_stay_float(unet, tmp_path):
    model, calibration, _, reference = unet
    backend = OpenVinoInt8Backend()
    ctx = PrepareContext("unet", model, calibration, (1, 32, 32), 2, "int8", "cpu", backend.parse_options({}))
    layers = [layer.name for layer in backend.quantizable_layers(ctx)]
    assert layers[:2] == ["encoder.0.0", "encoder.0.2"] and len(layers) == 23
    artifact = prepare(backend, tmp_path, model, calibration, options={"float_layers": "encoder.1.2,encoder.2.0"})
    assert len(artifact.meta["ignored_operations"]) == 2
    before, after = backend.coverage(reference), backend.coverage(artifact)
    int8_convs = before.int8["Convolution"] + before.int8["Deconvolution"]
    assert after.int8["Convolution"] + after.int8["Deconvolution"] == int8_convs - 2
    assert after.float_count > before.float_count
    with pytest.raises(UsageError, match="nope"):
        prepare(backend, tmp_path / "bad", model, calibration, options={"float_layers": "nope"})


def test_a_given_ir_is_deployed_as_it_is(unet, tmp_path):
    model, calibration, _, int8 = unet
    backend = OpenVinoInt8Backend()
    (tmp_path / "given").mkdir()
    given = prepare(backend, tmp_path / "given", model, calibration, options={"ir": str(int8.directory / "model.xml")})
    assert (given.directory / "model.bin").read_bytes() == (int8.directory / "model.bin").read_bytes()
    assert backend.coverage(given) == backend.coverage(int8) and "deployed as given" in given.meta["notes"]
    with pytest.raises(UsageError, match="exclude each other"):
        backend.parse_options({"ir": str(int8.directory / "model.xml"), "float_layers": "encoder.0.0"})
    with pytest.raises(UsageError, match="not an OpenVINO IR"):
        backend.parse_options({"ir": str(tmp_path / "missing.xml")})


def test_options_are_checked_in_the_parent():
    backend = OpenVinoInt8Backend()
    assert backend.parse_options({"preset": "mixed", "subset_size": "4"}).subset_size == 4
    with pytest.raises(UsageError, match="preset"):
        backend.parse_options({"preset": "fast"})
    with pytest.raises(UsageError, match="subset_size"):
        backend.parse_options({"subset_size": "-1"})
    assert backend.parse_options({"model_type": "transformer"}).model_type == "transformer"
    assert backend.parse_options({}).as_strings()["model_type"] == ""  # NNCF's default: no model type
    with pytest.raises(UsageError, match=r"^option openvino-int8.model_type=bert is not valid; expected one of , "):
        backend.parse_options({"model_type": "bert"})


def test_transformer_model_type_reaches_nncf_and_keeps_layernorm_float(tmp_path):
    """nncf.ModelType.TRANSFORMER on the op types of a SegFormer block: SmoothQuant scales appear in the IR
    and the LayerNorm (MVN) gets no quantizer of its own, so it runs in float where the default ran it in
    int8; both are recorded with the artifact."""
    from tests.helpers import tiny_transformer

    model, calibration = tiny_transformer()
    backend = OpenVinoInt8Backend()
    default = prepare(backend, tmp_path / "default", model, calibration)
    transformer = prepare(backend, tmp_path / "transformer", model, calibration, options={"model_type": "transformer"})
    assert (default.meta["model_type"], default.meta["smooth_quant_scales"]) == ("default", 0)
    assert transformer.meta["model_type"] == "transformer" and transformer.meta["smooth_quant_scales"] > 0
    assert "model type transformer" in transformer.meta["notes"]
    before, after = backend.coverage(default), backend.coverage(transformer)
    assert before.int8["MVN"] == 1 and "MVN" not in before.float
    assert after.float["MVN"] == 1 and "MVN" not in after.int8
    assert before.int8["Convolution (depthwise)"] == after.int8["Convolution (depthwise)"] == 1
    if not int8_sums_saturate():  # OpenVINO has no int8 attention Subgraph on an AVX2-only EPYC
        assert any(label.startswith("Subgraph(") and "Softmax" in label for label in after.int8)  # attention, named


def test_bf16_precision_and_unsupported_device():
    backend = OpenVinoFp32Backend()
    assert backend.precisions == ("fp32", "bf16")
    assert "does not support device 'cuda'" in backend.unavailable_reason("cuda")
    assert backend.unavailable_reason("cpu") is None


def test_without_the_package_the_rows_say_so(monkeypatch):
    real = sys.modules["openvino"]
    monkeypatch.setitem(sys.modules, "openvino", None)  # an import of it now fails, as when it is absent
    expected = "openvino is not installed (pip install 'segbench[openvino]')"
    assert OpenVinoFp32Backend().unavailable_reason("cpu") == expected
    assert OpenVinoInt8Backend().unavailable_reason("cpu").startswith("openvino is not installed")
    monkeypatch.setitem(sys.modules, "openvino", real)
    monkeypatch.setitem(sys.modules, "nncf", None)
    assert OpenVinoInt8Backend().unavailable_reason("cpu").startswith("nncf is not installed")


def test_its_throughput_settings_are_the_two_hints_and_the_requests_the_runtime_calls_optimal(unet):
    """--scenario offline: per batch size the LATENCY hint's one request and the THROUGHPUT hint's optimal
    number of requests (benchmark_app -hint throughput); every request computes what the session does."""
    _, calibration, fp32, _ = unet
    _, session = _run(OpenVinoFp32Backend(), fp32, calibration[:1], threads=2)
    settings = session.throughput_settings((1, 2), threads=2)
    assert [s.batch_size for s in settings] == [1, 1, 2, 2]
    latency, throughput = settings[2], settings[3]
    assert latency.describe() == "batch 2, 1 caller, LATENCY hint" and latency.callers == 1
    assert throughput.mode.startswith("THROUGHPUT hint, ") and throughput.mode.endswith(" streams")
    assert throughput.callers >= 1
    expected = session.to_numpy(session.run(session.to_input(calibration[:2])))
    for setting in (latency, throughput):
        callers = session.callers(setting, np.ascontiguousarray(calibration[:2]))
        assert len(callers) == setting.callers
        for call in callers:
            np.testing.assert_allclose(np.asarray(next(iter(call().values()))), expected, atol=1e-4)
