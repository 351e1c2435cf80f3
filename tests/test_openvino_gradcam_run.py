"""OpenVINO's Grad-CAM on a street-scene network of ENet's layout, in a real run on CamVid: a cut in the
decoder reads max-unpool indices and the unpool's shape arithmetic, which made OpenVINO's shape inference
fail at a `Range` when the head was reshaped to a batch (issue 30). Both OpenVINO rows must now have
valid Grad-CAM numbers and an `ok` status."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.measure.timing import TimingConfig
from bench.output.capture import wrote_traceback
from bench.run.config import RunConfig
from bench.run.runner import run_benchmark
from tests.helpers import SHARED_DATA

pytest.importorskip("openvino")
pytest.importorskip("nncf")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "camvid-mini").is_dir(), reason="the shared CamVid subset is not here"),
]

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tests.bench.models.slow_int8_fixture:enet_mini"


def _small_camvid(folder: Path) -> Path:
    """camvid at a quarter of its pixels and one explained image: the cut is the same, the run shorter."""
    text = (ROOT / "suites" / "camvid.toml").read_text()
    text = text.replace("input_size = [192, 256]", "input_size = [96, 128]").replace("images = 4", "images = 1")
    path = folder / "camvid-small.toml"
    path.write_text(text.replace('name = "camvid"', 'name = "camvid-small"'))
    return path


def test_both_openvino_rows_explain_a_decoder_layer_behind_max_unpools(session_cache: Path, tmp_path: Path) -> None:
    from tests.bench.models.slow_int8_fixture import enet_mini

    torch.manual_seed(0)  # random weights: their maps at stage3 are not all zero (at stage2 they are)
    torch.save(enet_mini(3, 11).state_dict(), tmp_path / "weights.pt")
    config = RunConfig(
        suites=(str(_small_camvid(tmp_path)),),
        models=(MODEL,),
        backends=("torch-eager", "openvino", "openvino-int8"),
        weights=tmp_path / "weights.pt",
        data_dir=SHARED_DATA / "camvid-mini",
        splits={"calibration": 4, "evaluation": 4},
        gradcam_layers=("stage3",),  # between the decoder's two max-unpools
        results_root=tmp_path / "results",
        threads=2,
        progress=False,
        timing=TimingConfig(warmup_s=0.05, min_time_s=0.2, min_iters=5),
    )
    run_dir = run_benchmark(config, log=lambda message: None)
    df = pd.read_parquet(run_dir / "results.parquet").set_index("backend")
    assert (df["status"] == "ok").all()
    for backend in ("openvino", "openvino-int8"):
        row = df.loc[backend]
        assert row["gradcam_status"] == "ok", row["gradcam_note"]
        assert row["gradcam_layer"] == "stage3" and row["gradcam_cut"] == "openvino"
        assert "head run one row at a time" in row["gradcam_note"]
        assert math.isfinite(row["gradcam_pearson"]) and row["gradcam_zero_maps"] == 0
        assert math.isfinite(row["gradcam_step_pearson"]) and row["gradcam_vs_deployed_max_abs"] <= 1e-3
    assert df.loc["openvino", "gradcam_pearson"] >= 0.999  # the fp32 cut's own check against autograd
    # nothing failed: the logs hold the libraries' own lines, no traceback
    assert not [path.name for path in (run_dir / "logs").glob("*.log") if wrote_traceback(path)]
