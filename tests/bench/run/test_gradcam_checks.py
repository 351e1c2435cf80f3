"""A failed fp32 check of a graph cut withdraws the maps of every row that used the same cut."""

from __future__ import annotations

from pathlib import Path

from bench.backend import NoOptions
from bench.gradcam.divergence import GradcamSummary
from bench.gradcam.explain import GradcamResult
from bench.run.cell import CellOutcome
from bench.run.gradcam_checks import CutVerdicts
from bench.run.matrix import CellSpec, TimingConfig


def _outcome(backend: str, precision: str, cut: str, status: str = "ok", model: str = "m") -> CellOutcome:
    spec = CellSpec(
        suite="s",
        model=model,
        backend=backend,
        precision=precision,
        device="cpu",
        threads=1,
        batch_size=1,
        timing=TimingConfig(),
        checkpoint=Path("c"),
        reference=Path("r"),
        options=NoOptions(),
    )
    result = GradcamResult(
        method="finite-difference",
        note="",
        summaries={"layer": GradcamSummary(0.9, 0.9, 0.9, 0.1, 0)},
        status=status,
        cut=cut,
    )
    return CellOutcome(spec=spec, status="ok", gradcam=result)


def test_a_failed_onnx_check_marks_the_int8_onnx_rows_of_that_model_only() -> None:
    verdicts = CutVerdicts()
    verdicts.observe(_outcome("ort", "fp32", "onnx", status="invalid: finite differences disagree"))
    marked = verdicts.apply(_outcome("ort-qdq-int8", "int8", "onnx")).gradcam
    assert marked is not None and marked.status.startswith("invalid: the onnx cut at layer failed")
    assert "ort fp32" in marked.status and "gradcam_pearson" not in marked.columns()
    assert verdicts.apply(_outcome("torch-fx-int8", "int8", "fx")).gradcam.status == "ok"  # another cut
    assert verdicts.apply(_outcome("ort-qdq-int8", "int8", "onnx", model="other")).gradcam.status == "ok"


def test_a_passed_check_marks_nothing_and_verdicts_survive_a_resume() -> None:
    verdicts = CutVerdicts()
    verdicts.observe(_outcome("ort", "fp32", "onnx"))
    assert verdicts.apply(_outcome("ort-qdq-int8", "int8", "onnx")).gradcam.status == "ok"
    row = {
        "suite": "s",
        "model": "m",
        "backend": "ort",
        "precision": "fp32",
        "gradcam_layer": "layer",
        "gradcam_cut": "onnx",
        "gradcam_status": "invalid: zero maps",
    }
    resumed = CutVerdicts([row])
    assert resumed.apply(_outcome("ort-qdq-int8", "int8", "onnx")).gradcam.status.startswith("invalid")
