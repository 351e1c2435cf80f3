"""Which float cell an int8 cell is judged against: the report's profiles (where the int8 time goes beside
the float time) and the decision ("quantizing does not pay here") read the same answer.

Each backend declares its float side (`Backend.float_counterparts`), so a plugin's int8 backend is compared
with its own runtime's float cell without a line here; a backend that declares none (torch-fx-int8 and
torchao-pt2e-int8 have no float runtime of their own), or one not installed where the folder is read, is
compared with the run's reference, torch-eager fp32 (`bench.results.speedup.REFERENCE`).
"""

from __future__ import annotations

from collections.abc import Collection

from bench.backend import declared_backend
from bench.results.speedup import REFERENCE


def declared_counterparts(backend: str) -> tuple[tuple[str, str], ...]:
    """The (backend, precision) float cells `backend` declares, first choice first; () when it declares
    none or is not installed here."""
    found = declared_backend(backend)
    return () if found is None else tuple(found.float_counterparts)


def float_counterpart(backend: str, precision: str, available: Collection[tuple[str, str]]) -> tuple[str, str] | None:
    """The (backend, precision) an int8 cell is compared with, among the `available` cells of its group
    (those that ran): the first of its declared float cells that ran, else the run's reference,
    torch-eager fp32. None for a cell that is not int8, or when neither ran."""
    if precision != "int8":
        return None
    return next((c for c in (*declared_counterparts(backend), REFERENCE) if c in available), None)
