"""Bring-your-own models: a factory from a module in the tests, with weights and an ONNX file, and
every error a user can make, each one line naming what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from backends.onnx.export import export_onnx
from bench.errors import UsageError
from bench.models import create_model, get_model_entry
from bench.models.external import build_external, check_output_shape, load_weights, read_state_dict
from bench.onnx.user_model import check_onnx_fits, import_onnx
from tests.bench.models.byo_fixture import TinyNet

FIXTURE = "tests.bench.models.byo_fixture"
REPO = Path(__file__).resolve().parents[3]


def test_factory_with_and_without_arguments() -> None:
    model = build_external(f"{FIXTURE}:tiny_net", 3, 4)
    assert isinstance(model, TinyNet) and model.head.out_channels == 4 and model.features[0].in_channels == 3
    assert isinstance(build_external(f"{FIXTURE}:tiny_net_no_arguments", 3, 4), TinyNet)
    assert isinstance(create_model(f"{FIXTURE}:tiny_net", 1, 2), TinyNet)
    assert get_model_entry(f"{FIXTURE}:tiny_net").source_file.name == "byo_fixture.py"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_package.models:net", "cannot import 'no_such_package.models': ModuleNotFoundError"),
        (f"{FIXTURE}:missing", f"module '{FIXTURE}' has no attribute 'missing'"),
        (f"{FIXTURE}:not_a_module", "the factory returned a str, expected a torch.nn.Module"),
        (f"{FIXTURE}:raises", "the factory raised RuntimeError: the user's factory is broken"),
        (f"{FIXTURE}:", "is not of the form package.module:factory"),
    ],
)
def test_factory_errors_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_external(spec, 1, 2)


def test_output_that_does_not_fit_the_suite() -> None:
    model = build_external(f"{FIXTURE}:wrong_classes", 1, 2)
    with pytest.raises(UsageError, match=r"output shape \(1, 5, 32, 32\) does not fit the suite"):
        check_output_shape(model, f"{FIXTURE}:wrong_classes", 1, (32, 32), 2)


def test_state_dict_mismatch_names_keys(tmp_path: Path) -> None:
    state = TinyNet(1, 2).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["head.bias"]
    path = tmp_path / "w.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(UsageError, match=r"missing keys: head.bias; unexpected keys: extra.weight"):
        load_weights(TinyNet(1, 2), read_state_dict(path), path)
    torch.save(TinyNet(1, 3).state_dict(), path)
    with pytest.raises(
        UsageError, match=r"shape mismatch \(file vs model\): head.weight \(3, 8, 1, 1\) vs \(2, 8, 1, 1\)"
    ):
        load_weights(TinyNet(1, 2), read_state_dict(path), path)


def test_weights_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot load with weights_only=True"):
        read_state_dict(tmp_path / "junk.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="expected a state dict"):
        read_state_dict(tmp_path / "list.pt")


def test_onnx_that_does_not_fit_the_suite(tmp_path: Path) -> None:
    path = export_onnx(TinyNet(3, 2), (3, 32, 32), tmp_path / "rgb.onnx")
    with pytest.raises(
        UsageError,
        match=r"rgb.onnx': input 'input' has shape \['batch', 3, 32, 32\], which does not fit "
        r"the suite's \(N, 1, 128, 128\) images",
    ):
        check_onnx_fits(path, 1, (128, 128), 2)
    with pytest.raises(UsageError, match="has 2 channels; the suite has 5 classes"):
        check_onnx_fits(path, 3, (32, 32), 5)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(UsageError, match="not a readable ONNX model"):
        check_onnx_fits(tmp_path / "junk.onnx", 3, (32, 32), 2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_imported_onnx_gets_standard_names_and_a_symbolic_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    model = TinyNet(1, 2).eval()
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 1, 32, 32),), str(fixed), input_names=["image"], output_names=["out"], dynamo=False
    )
    imported = import_onnx(fixed, 1, (32, 32), 2)
    graph = onnx.load(str(imported)).graph
    assert [graph.input[0].name, graph.output[0].name] == ["input", "logits"]
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    out = ort.InferenceSession(str(imported), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(out, model(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def _segbench(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture()
def cli_env(tmp_path: Path, session_cache: Path) -> dict[str, str]:
    import os

    return {**os.environ, "SEGBENCH_CACHE": str(session_cache), "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_run_with_own_model_weights_and_onnx(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """The user's weights are what every backend runs: the ORT graph is the user's file, and the
    float rows agree with the torch reference built from the user's state dict."""
    torch.manual_seed(3)
    model = TinyNet(1, 2).eval()
    weights, onnx_file = tmp_path / "tiny.pt", tmp_path / "tiny.onnx"
    torch.save(model.state_dict(), weights)
    export_onnx(model, (1, 128, 128), onnx_file)
    done = _segbench(
        "run",
        "--model",
        f"{FIXTURE}:tiny_net",
        "--weights",
        str(weights),
        "--onnx",
        str(onnx_file),
        "--backends",
        "torch-eager,ort,ort-qdq-int8",
        "--out",
        str(tmp_path / "results"),
        "--threads",
        "1",
        "--min-time",
        "0.2",
        "--min-iters",
        "10",
        "--warmup",
        "0.1",
        "--quiet",
        "--no-gradcam",
        cwd=tmp_path,
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    df = pd.read_parquet(next((tmp_path / "results").glob("2*")) / "results.parquet")
    assert list(df.status) == ["ok", "ok", "ok"], df.status.tolist()
    assert set(df.model) == {f"{FIXTURE}:tiny_net"}
    rows = df.set_index("backend")
    assert (
        "user ONNX tiny.onnx" in rows.loc["ort", "notes"] and "user ONNX tiny.onnx" in rows.loc["ort-qdq-int8", "notes"]
    )
    assert rows.loc["ort", "pixel_agreement"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", f"{FIXTURE}:not_a_module"], "the factory returned a str"),
        (["--model", "unet,unet", "--weights", "w.pt"], "--weights needs exactly one model"),
        (["--model", f"{FIXTURE}:tiny_net", "--onnx", "missing.onnx"], "--onnx 'missing.onnx' does not exist"),
    ],
)
@pytest.mark.integration
def test_cli_errors_are_one_line_exit_2(
    tmp_path: Path, cli_env: dict[str, str], extra: list[str], message: str
) -> None:
    done = _segbench("run", *extra, "--out", str(tmp_path / "r"), "--quiet", cwd=tmp_path, env=cli_env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
