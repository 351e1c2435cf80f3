"""Layers a quantizing backend can keep in float: the names `segbench tune` measures one by one and the
`float_layers` option takes back (`--option torch-fx-int8.float_layers=a,b`).

A layer is named by the float model's module path (`backbone.layer1.0.conv1`) on every backend, so one
sensitivity table reads across runtimes: the torch backends exclude that module from their quantizer,
the ONNX ones the node whose weight the exporter named `<module path>.weight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

FLOAT_LAYERS_OPTION = "float_layers"


@dataclass(frozen=True)
class QuantLayer:
    """One layer int8 quantizes: its module path, its operator type, and the backend's own name for it
    (an ONNX node name; the module path again for the torch backends)."""

    name: str
    op_type: str
    node: str


def parse_float_layers(text: str) -> tuple[str, ...]:
    """The `float_layers` option's value as names, in the given order, without blanks or repeats."""
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def weighted_modules(model: nn.Module) -> list[QuantLayer]:
    """Convolutions and linear layers by module path, in definition order: what the torch quantizers
    quantize with int8 weights, and what a user means by "a layer"."""
    from torch import nn

    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
    return [
        QuantLayer(name, type(module).__name__, name)
        for name, module in model.named_modules()
        if isinstance(module, kinds)
    ]


def check_float_layers(backend: str, names: tuple[str, ...], layers: list[QuantLayer]) -> None:
    """A usage error for a name that is not one of `layers` (a typo would otherwise quantize everything)."""
    known = {layer.name for layer in layers} | {layer.node for layer in layers}
    if unknown := [name for name in names if name not in known]:
        sample = ", ".join(layer.name for layer in layers[:4])
        raise UsageError(
            f"option {backend}.{FLOAT_LAYERS_OPTION} names '{unknown[0]}', which is not a quantizable layer of "
            f"the model; expected module paths of its {len(layers)} conv/linear layers (e.g. {sample})"
        )
