"""Hugging Face models: the zoo's `segformer-b0` and `--models hf:PATH` (a local `save_pretrained` folder).

Nothing is downloaded: every model is built from a config with random weights. Skipped where the optional
`transformers` is not installed, except the check that says how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.errors import UsageError
from bench.models import create_model, list_models

REPO = Path(__file__).resolve().parents[3]
NUCLEI = {0: "background", 1: "nucleus"}  # synthetic-nuclei's classes, 1-channel 128x128 images
FAST_TIMING = ("--threads", "1", "--min-time", "0.2", "--min-iters", "10", "--warmup", "0.1", "--quiet")


def _tiny_folder(path: Path, labels: dict[int, str] = NUCLEI, channels: int = 1) -> Path:
    """A tiny SegFormer (31 k parameters) written by save_pretrained, as a user's trained model would be."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        num_channels=channels,
        hidden_sizes=[8, 16, 16, 16],
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16,
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    transformers.SegformerForSemanticSegmentation(config).save_pretrained(path)
    return path


def _segbench(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEGBENCH_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_without_transformers_the_zoo_lists_and_segformer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    assert "segformer-b0" in list_models()
    with pytest.raises(UsageError, match=r"^model 'segformer-b0' needs .*pip install 'segbench\[transformers\]'$"):
        create_model("segformer-b0", 3, 2)


@pytest.mark.slow
def test_segformer_b0_has_the_published_size_full_size_logits_and_exports_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import numpy as np
    import onnxruntime as ort

    from backends.onnx.export import export_onnx

    torch.manual_seed(0)
    model = create_model("segformer-b0", 3, 2).eval()
    assert 3.6e6 < sum(p.numel() for p in model.parameters()) < 3.8e6  # MiT-b0 + all-MLP decoder: 3.7 M
    x = torch.randn(3, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        features = {}
        layer = model.get_submodule(model.gradcam_layer)
        handle = layer.register_forward_hook(lambda m, i, o: features.setdefault("out", o))
        model(x[:1])
        handle.remove()
    assert out.shape == (3, 2, 64, 96) and torch.isfinite(out).all()
    assert features["out"].shape == (1, 256, 16, 24)  # the default Grad-CAM layer is spatial, at H/4 x W/4
    path = export_onnx(model, (3, 64, 96), tmp_path / "segformer.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]  # a batch of 3: the batch dimension stayed symbolic
    np.testing.assert_allclose(got, out.numpy(), atol=1e-4)


@pytest.mark.slow
def test_run_hf_folder_uses_its_weights_on_torch_and_ort_int8(tmp_path: Path, session_cache: Path) -> None:
    folder = _tiny_folder(tmp_path / "tiny-segformer")
    done = _segbench(
        "run",
        "--models",
        f"hf:{folder}",
        "--backends",
        "torch-eager,ort-qdq-int8",
        "--no-gradcam",
        "--out",
        str(tmp_path / "results"),
        *FAST_TIMING,
        cwd=tmp_path,
        cache=session_cache,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    df = pd.read_parquet(next((tmp_path / "results").glob("2*")) / "results.parquet")
    assert list(df.status) == ["ok", "ok"], df.status.tolist()
    assert set(df.model) == {f"hf:{folder}"}
    assert df[["dice", "miou", "pixel_agreement"]].notna().all().all()
    # the reference is the folder's own weights, scored, not a model trained here
    checkpoint = next((session_cache / "checkpoints").glob("hf_tiny-segformer--synthetic-nuclei--weights-*.pt"))
    meta = torch.load(checkpoint, weights_only=True)["meta"]
    assert meta["recipe"] is None and meta["train_seconds"] == 0.0
    from transformers import AutoModelForSemanticSegmentation

    own = AutoModelForSemanticSegmentation.from_pretrained(folder, local_files_only=True).state_dict()
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(saved[f"model.{k}"], v) for k, v in own.items())


@pytest.mark.parametrize(
    ("labels", "channels", "message"),
    [
        (
            {0: "road", 1: "sidewalk", 2: "building"},
            1,
            "the model has 3 labels (road, sidewalk, building); suite 'synthetic-nuclei' has 2 classes "
            "(background, nucleus)",
        ),
        (NUCLEI, 3, "the model takes 3-channel images (num_channels); suite 'synthetic-nuclei' has 1-channel images"),
    ],
    ids=["labels", "channels"],
)
@pytest.mark.integration
def test_a_folder_that_does_not_fit_the_suite_is_one_line_exit_2(
    tmp_path: Path, session_cache: Path, labels: dict[int, str], channels: int, message: str
) -> None:
    folder = _tiny_folder(tmp_path / "model", labels, channels)
    done = _segbench("run", "--models", f"hf:{folder}", "--out", str(tmp_path / "r"), cwd=tmp_path, cache=session_cache)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"--models hf:{folder}: {message}" in done.stderr, done.stderr
    assert not (tmp_path / "r").exists()


def test_label_names_are_compared_unless_default_and_folder_errors_name_the_path(tmp_path: Path) -> None:
    from bench.data.suite import get_suite
    from bench.models.external import check_suite

    suite = get_suite("synthetic-nuclei")
    check_suite(f"hf:{_tiny_folder(tmp_path / 'plain', {0: 'LABEL_0', 1: 'LABEL_1'})}", suite)
    check_suite(f"hf:{_tiny_folder(tmp_path / 'cased', {0: 'Background', 1: 'nucleus'})}", suite)
    named = f"hf:{_tiny_folder(tmp_path / 'named', {0: 'sky', 1: 'cell'})}"
    with pytest.raises(
        UsageError,
        match=rf"^--models {named}: the model's labels \(sky, cell\) differ from the classes of suite "
        r"'synthetic-nuclei' \(background, nucleus\): label 0 'sky' vs 'background', label 1 'cell' vs 'nucleus'$",
    ):
        check_suite(named, suite)
    with pytest.raises(UsageError, match="is not a folder"):
        check_suite(f"hf:{tmp_path / 'missing'}", suite)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="has no config.json"):
        check_suite(f"hf:{tmp_path / 'empty'}", suite)
    (tmp_path / "plain" / "model.safetensors").unlink()
    with pytest.raises(UsageError, match="has no weights"):
        check_suite(f"hf:{tmp_path / 'plain'}", suite)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:While compiling, we found certain side effects:UserWarning")
def test_pt2e_strict_export_works_and_fx_says_why_it_cannot_trace(tmp_path: Path) -> None:
    """transformers' output-capturing hooks are installed before any trace (their lock stops Dynamo);
    torch.fx.symbolic_trace cannot trace a transformers model, and says it is one."""
    from backends.torch.fx_int8 import _check_traceable
    from backends.torch.pt2e_int8 import capture
    from bench.models.huggingface import build_hf

    spec = f"hf:{_tiny_folder(tmp_path / 'tiny')}"
    model = build_hf(spec, 1, 2)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(capture(model, x)(x), model(x))
    with pytest.raises(
        RuntimeError, match=r"\(a transformers model: .*\): TraceError: Proxy object cannot be iterated"
    ):
        _check_traceable(model, spec)
