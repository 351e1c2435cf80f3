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


def declared_backend(name: str) -> Backend | None:
    """The backend of that name for reading its declarations (`float_counterparts`, `libraries`); None
    when no installed distribution registers it, or it fails to load: a results folder may name a
    plugin that is not installed where it is read."""
    try:
        return get_backend(name)
    except UsageError:
        return None


def declared_libraries() -> tuple[str, ...]:
    """Every library some installed backend declares, once each, in the order of the backends' names."""
    found = (declared_backend(name) for name in list_backends())
    return tuple(dict.fromkeys(library for backend in found if backend is not None for library in backend.libraries))
