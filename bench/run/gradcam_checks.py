"""A failed check of a graph cut marks every row that used that cut, not only the row that failed it.

Finite differences on an fp32 graph must reproduce fp32 autograd's maps (`bench.gradcam.explain`): the
`ort` fp32 row is the built-in check of the ONNX cut at the run's Grad-CAM layer. When it fails, the
same cut of the int8 graph of that model (ort-qdq-int8, any other ONNX-based backend) cannot be
trusted either, so those rows read `gradcam_status = invalid: ...` instead of publishing numbers. fp32
cells are explained first within each (suite, model) (`bench.run.runner.plan_cells`), and on
`--resume` the verdicts are read back from the rows already on disk.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.run.cell import CellOutcome


class CutVerdicts:
    """Failed cut checks per (suite, model, layer, cut), from this run's rows so far."""

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self._failed: dict[tuple[str, str, str, str], str] = {}
        for row in rows or []:
            self._note(
                row.get("suite"),
                row.get("model"),
                row.get("gradcam_layer"),
                row.get("gradcam_cut"),
                row.get("backend"),
                row.get("precision"),
                row.get("gradcam_status"),
            )

    def _note(self, suite: Any, model: Any, layer: Any, cut: Any, backend: Any, precision: Any, status: Any) -> None:
        if cut and layer and str(status or "").startswith("invalid"):
            self._failed.setdefault((str(suite), str(model), str(layer), str(cut)), f"{backend} {precision}")

    def observe(self, outcome: CellOutcome) -> None:
        """Remember a cell whose own check failed."""
        found = outcome.gradcam
        if found is not None and found.layer is not None:
            spec = outcome.spec
            self._note(spec.suite, spec.model, found.layer, found.cut, spec.backend, spec.precision, found.status)

    def apply(self, outcome: CellOutcome) -> CellOutcome:
        """The outcome with its Grad-CAM withdrawn when an earlier cell failed the check of the same cut."""
        found = outcome.gradcam
        if found is None or found.layer is None or not found.cut or found.status.startswith("invalid"):
            return outcome
        spec = outcome.spec
        failed_by = self._failed.get((spec.suite, spec.model, found.layer, found.cut))
        if failed_by is None:
            return outcome
        why = (
            f"the {found.cut} cut at {found.layer} failed its fp32 check in the {failed_by} row "
            f"(finite differences disagree with autograd), so its maps of this graph cannot be trusted"
        )
        return replace(outcome, gradcam=found.invalidated(why))
