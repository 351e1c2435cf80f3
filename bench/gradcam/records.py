"""The cut a backend hands to the shared finite-difference code.

A backend answers a `GradcamRequest` with `GradcamMaps` computed by its own arithmetic (both in
`bench.backend`); when its graph can be cut at the feature layer it hands over a `FeatureSplit` and
the shared finite-difference code turns that into maps, so every backend's alphas are computed the
same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FeatureSplit:
    """One image's forward pass cut at the feature tensor A by a backend.

    `features` are A's values (K, h, w) as the head reads them (dequantized for an int8 tensor).
    `head_shifted(channels)` reruns the backend's own head for a batch: entry -1 is the unshifted A,
    entry k is A with channel k shifted by `step[k]` everywhere (for an int8 tensor: the integer codes
    moved by a whole number of quantization steps, clipped to the code range); it returns the logits
    (len(channels), C, H, W). Finite differences of the class scores over these passes give alpha.
    """

    features: np.ndarray
    step: np.ndarray  # (K,) shift per channel, in the units of `features`
    head_shifted: Callable[[np.ndarray], np.ndarray]
    meta: dict[str, object] = field(default_factory=dict)
