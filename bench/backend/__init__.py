"""The backend contract and its registry, in one place for plugin authors (`from bench.backend import ...`).

A backend turns the float reference model into a deployable artifact (files on disk), loads it into
a session, and runs batches: `base` (the classes to implement, and the whole contract in `Backend`'s
docstring), `options` (typed options), `records` (what passes between harness and backend), `registry`.
"""

from bench.backend.base import RESERVED_META_KEYS, Backend, Session
from bench.backend.layers import FLOAT_LAYERS_OPTION, QuantLayer, check_float_layers, parse_float_layers
from bench.backend.options import BackendOptions, NoOptions
from bench.backend.profiling import CATEGORIES, OVERHEAD_CATEGORIES, OpTime, Profile, op_category
from bench.backend.records import (
    GRADCAM_CHOICES,
    GRADCAM_METHODS,
    AccuracyControlResult,
    Artifact,
    GradcamMaps,
    GradcamRequest,
    OpCoverage,
    PrepareContext,
    ThroughputSetting,
    grouped_conv_label,
)
from bench.backend.registry import (
    ENTRY_POINT_GROUP,
    declared_backend,
    declared_libraries,
    get_backend,
    list_backends,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "FLOAT_LAYERS_OPTION",
    "GRADCAM_CHOICES",
    "GRADCAM_METHODS",
    "RESERVED_META_KEYS",
    "CATEGORIES",
    "OVERHEAD_CATEGORIES",
    "AccuracyControlResult",
    "Artifact",
    "Backend",
    "BackendOptions",
    "GradcamMaps",
    "GradcamRequest",
    "NoOptions",
    "OpCoverage",
    "grouped_conv_label",
    "OpTime",
    "PrepareContext",
    "Profile",
    "QuantLayer",
    "Session",
    "ThroughputSetting",
    "check_float_layers",
    "declared_backend",
    "declared_libraries",
    "get_backend",
    "list_backends",
    "op_category",
    "parse_float_layers",
]
