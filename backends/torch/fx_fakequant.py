"""Fake-quant simulation of an FX int8 graph, for Grad-CAM by autograd (the second method beside
finite differences on the converted graph itself, `backends.torch.fx_cut`).

The observed graph (`prepare_fx`, after calibration) is the float network with an observer after every
tensor the converted graph quantizes. The simulation keeps that graph and replaces:

- each activation observer by a fixed straight-through fake-quant with the scale and zero point the
  observer chose (`calculate_qparams`: the very parameters `convert_fx` writes into the quantized
  modules) and the code range of its dtype, so the forward values are the int8 graph's codes, dequantized;
- each float conv/linear weight by the converted module's int8 weight, dequantized (per channel where
  the converted module is).

The converted graph's kernels requantize inside fused ops (conv + ReLU, add + ReLU) and round
intermediate sums their own way, so the simulation is close to the deployed graph, not identical: the
caller states the largest logit difference and judges it against a tolerance.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

from backends.torch.fx_cut import OutputMark, _is_observer
from bench.gradcam.method import UnsupportedProgram

QUANTIZED_DTYPES = (torch.quint8, torch.qint8)


class FixedFakeQuant(nn.Module):
    """Per-tensor fake quantization with fixed parameters and the straight-through gradient."""

    def __init__(self, scale: float, zero_point: int, quant_min: int, quant_max: int) -> None:
        super().__init__()
        self.scale, self.zero_point = float(scale), int(zero_point)
        self.quant_min, self.quant_max = int(quant_min), int(quant_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, self.quant_min, self.quant_max)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}, zero_point={self.zero_point}, range=[{self.quant_min}, {self.quant_max}]"


def _fixed(observer: Any) -> nn.Module:
    """The observer's fixed fake-quant (identity for an observer of a tensor that stays float)."""
    if getattr(observer, "dtype", None) not in QUANTIZED_DTYPES:
        return nn.Identity()
    scale, zero_point = observer.calculate_qparams()
    if scale.numel() != 1:
        raise UnsupportedProgram("per-channel activation quantization is not simulated")
    # The code range of the dtype, not the observer's: with reduce_range (x86) the observer scales its
    # calibration range to 0..127, but the converted graph's quint8 tensors still hold 0..255.
    info = torch.iinfo(observer.dtype)
    return FixedFakeQuant(float(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0]), info.min, info.max)


def _float_weighted(module: nn.Module) -> nn.Module | None:
    """The conv/linear holding the float weight in an observed module (a fused ConvReLU2d is a Sequential)."""
    if (
        isinstance(module, nn.Sequential)
        and len(module)
        and isinstance(getattr(module[0], "weight", None), nn.Parameter)
    ):
        return module[0]
    return module if isinstance(getattr(module, "weight", None), nn.Parameter) else None


def fx_fake_quant_module(prepared: fx.GraphModule, converted: fx.GraphModule) -> fx.GraphModule:
    """A differentiable copy of the observed graph that computes what the converted graph computes,
    up to the rounding inside fused int8 kernels (see the module docstring)."""
    module = copy.deepcopy(prepared)
    converted_modules = dict(converted.named_modules())
    weights = 0
    for node in module.graph.nodes:
        if node.op != "call_module":
            continue
        target = str(node.target)
        sub = module.get_submodule(target)
        if _is_observer(sub):
            owner, _, attr = target.rpartition(".")
            setattr(module.get_submodule(owner) if owner else module, attr, _fixed(sub))
            continue
        quantized = converted_modules.get(target)
        weight = getattr(quantized, "weight", None)
        float_module = _float_weighted(sub)
        if quantized is None or not callable(weight) or float_module is None:
            continue
        value = weight()
        if isinstance(value, torch.Tensor) and value.is_quantized:
            float_module.weight.data = (
                value.dequantize().to(float_module.weight.dtype).reshape(float_module.weight.shape)
            )
            weights += 1
    if weights == 0:
        raise UnsupportedProgram("no int8 weight of the converted FX graph matched a module of the observed graph")
    module.recompile()
    return module


def tap_locator(marks: dict[str, OutputMark | None]) -> Any:
    """`locate(graph, layer)` for `add_taps`: the layer's output node in the observed graph, or the
    fake-quant right after it (what the rest of the network reads)."""

    def locate(graph: fx.Graph, layer: str) -> fx.Node:
        mark = marks.get(layer)
        if mark is None:
            raise UnsupportedProgram(f"layer '{layer}' is not in the observed FX graph")
        node = next((n for n in graph.nodes if n.name == mark.node), None)
        if node is None:
            raise UnsupportedProgram(f"layer '{layer}''s output {mark.node} is not in the observed FX graph")
        owner = graph.owning_module
        users = list(node.users)
        if (
            len(users) == 1
            and users[0].op == "call_module"
            and owner is not None
            and isinstance(owner.get_submodule(str(users[0].target)), FixedFakeQuant)
        ):
            return users[0]
        return node

    return locate
