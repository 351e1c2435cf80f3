"""The registry: backends are the `segbench.backends` entry points of every installed distribution, so
a separate package adds one without touching this repository. Each is loaded when it is asked for: a
plugin that fails to import is reported for itself and does not take the others down.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from bench.backend.base import Backend
from bench.errors import UsageError, unknown_name

ENTRY_POINT_GROUP = "segbench.backends"


def _discover() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}  # loaded lazily, one by one


def list_backends() -> list[str]:
    return sorted(_discover())


def get_backend(name: str) -> Backend:
    eps = _discover()
    if name not in eps:
        raise unknown_name("backend", name, list(eps))
    try:
        cls = eps[name].load()
    except Exception as exc:  # a plugin that fails to import is reported, not fatal to others
        raise UsageError(f"backend '{name}' failed to load: {type(exc).__name__}: {exc}") from exc
    return cls()
