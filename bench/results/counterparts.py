"""Which float cell an int8 cell is judged against: the report's profiles (where the int8 time goes beside
the float time) and the decision ("quantizing does not pay here") read the same answer.
"""

from __future__ import annotations

from collections.abc import Collection

from bench.results.speedup import REFERENCE

# The one place that says which float cell an int8 cell is judged against. An int8 backend's float
# counterpart is the first of its candidates, (backend, precision), that ran (status ok) in the same
# (suite, model, device, batch size); when none did, or the backend has no entry (torch-fx-int8 and
# torchao-pt2e-int8 have no float runtime of their own), the run's reference, torch-eager fp32
# (`bench.results.speedup.REFERENCE`). TensorRT has no fp32 backend: its float side is tensorrt-fp16.
FLOAT_COUNTERPARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "ort-qdq-int8": (("ort", "fp32"),),
    "openvino-int8": (("openvino", "fp32"),),
    "tensorrt-int8": (("tensorrt-fp16", "fp16"),),
}


def float_counterpart(backend: str, precision: str, available: Collection[tuple[str, str]]) -> tuple[str, str] | None:
    """The (backend, precision) an int8 cell is compared with, among the `available` cells of its group
    (those that ran): its runtime's float cell (`FLOAT_COUNTERPARTS`), else the run's reference,
    torch-eager fp32. None for a cell that is not int8, or when neither ran."""
    if precision != "int8":
        return None
    return next((c for c in (*FLOAT_COUNTERPARTS.get(backend, ()), REFERENCE) if c in available), None)
