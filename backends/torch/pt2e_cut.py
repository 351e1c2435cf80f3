"""Cut a converted PT2E program at the Grad-CAM feature layer's 8-bit codes, so finite differences run
its own head, as they do for the FX and ONNX Runtime int8 graphs.

A converted program (`torch.export.load(path).module()`, before `torch.compile`) is an FX graph of
float ops between `quantized_decomposed` quantize/dequantize nodes, with the same scales and zero
points Inductor's int8 kernels use. The layer's output is the last node whose `nn_module_stack` holds
the layer's path; the quantize node that reads it (past ops that hand it on unchanged: an eval-mode
dropout) holds the codes the rest of the network sees. The
cut shifts those codes channel by channel by a whole number of quantization steps (clipped to the
node's code range) and reruns the head (`backends.torch.fx_cut.FxHead`) in the program's own eager
arithmetic; a token layer's (1, N, C) codes are shifted on their spatial grid (bench/gradcam/tokens.py).
A layer whose output stays float (nothing quantizes it), or is also read in float besides
its quantize node, has no single code tensor: `SplitUnavailable`.

The uncompiled program is not the compiled one Inductor deploys (fused int8 kernels round differently):
the backend states the largest logit difference between them, measured when the artifact was made.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

from backends.torch.fakequant import DEQUANTIZE, QUANTIZE, bound_args, constant_arg, decomposed_op
from backends.torch.fx_cut import FxHead, Recorder, check_reproduces, first_output, grid_codes, shift_rows
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import SplitUnavailable


def _in_layer(node: fx.Node, layer: str) -> bool:
    return any(path == layer for path, _ in (node.meta.get("nn_module_stack") or {}).values())


# ops that hand their input on unchanged in an eval-mode program (dropout only where `train` is False)
UNCHANGED = ("aten.clone.default", "aten.alias.default", "aten.detach.default")
DROPOUT = ("aten.dropout.default", "aten.feature_dropout.default")


def _unchanged(node: fx.Node) -> bool:
    """Does the node pass its first input on as it is (a clone, or a dropout of an eval-mode program)?"""
    target = str(node.target) if node.op == "call_function" else ""
    if target in DROPOUT:
        train = node.args[2] if len(node.args) > 2 else node.kwargs.get("train", True)
        return train is False
    return target in UNCHANGED


def code_node(program: fx.GraphModule, layer: str) -> fx.Node:
    """The quantize node holding the layer's output codes (see the module docstring)."""
    inside = [n for n in program.graph.nodes if n.op == "call_function" and _in_layer(n, layer)]
    if not inside:
        raise SplitUnavailable(f"layer '{layer}' is not in the converted PT2E program")
    node = inside[-1]
    if (
        decomposed_op(node) in DEQUANTIZE
        and isinstance(node.args[0], fx.Node)
        and decomposed_op(node.args[0]) in QUANTIZE
    ):
        return node.args[0]  # the layer's own stack reaches into its output's Q/DQ pair
    if decomposed_op(node) in QUANTIZE:
        return node
    while len(node.users) == 1 and _unchanged(next(iter(node.users))):
        node = next(iter(node.users))  # SegFormer's decoder: ReLU -> dropout (eval) -> quantize
    quantizers = [u for u in node.users if decomposed_op(u) in QUANTIZE]
    if not quantizers:
        raise SplitUnavailable(f"layer '{layer}' ({node.name}) outputs a float tensor: nothing quantizes it")
    if len(node.users) > 1:
        other = next(u for u in node.users if u is not quantizers[0])
        raise SplitUnavailable(
            f"layer '{layer}' ({node.name}) is read by {other.name} besides its quantize node, so no single "
            f"code tensor carries it"
        )
    return quantizers[0]


def pt2e_feature_split(program: fx.GraphModule, image: np.ndarray, layer: str, steps: int = 4) -> FeatureSplit:
    """One image's forward pass of a converted PT2E program cut at `layer`'s quantized output codes."""
    if int(steps) != steps or steps < 1:
        raise SplitUnavailable(f"the finite-difference step must be a positive whole number, got {steps}")
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    if x.ndim != 4 or x.shape[0] != 1:
        raise SplitUnavailable(f"pt2e_feature_split takes one image (1, C, H, W), got shape {tuple(x.shape)}")
    cut = code_node(program, layer)
    if decomposed_op(cut) != "quantize_per_tensor":
        raise SplitUnavailable(f"layer '{layer}' is quantized by {decomposed_op(cut)}, not per tensor")
    params: dict[str, Any] = bound_args(cut)
    scale = float(constant_arg(program, params["scale"]))
    zero_point = int(constant_arg(program, params["zero_point"]))
    low, high = int(params["quant_min"]), int(params["quant_max"])
    recorder = Recorder(program)
    with torch.no_grad():
        full = recorder.run(x)
    codes, layout = grid_codes(recorder.values[cut], x, layer, cut)
    head = FxHead(program, cut, recorder.values)
    base = codes[0]
    moved = (base.to(torch.int64) + int(steps)).clamp(low, high).to(base.dtype)
    clipped = float((moved.to(torch.int64) - base.to(torch.int64) != int(steps)).double().mean())

    def head_shifted(channels: np.ndarray) -> np.ndarray:
        return head.run(layout(shift_rows(base, moved, channels)))

    reference = first_output(full)
    check_reproduces(head_shifted, reference, f"the PT2E head cut at '{layer}'")
    features = (base.to(torch.float64) - zero_point) * scale
    return FeatureSplit(
        features=features.float().numpy(),
        step=np.full(base.shape[0], int(steps) * scale),
        head_shifted=head_shifted,
        meta={
            "kind": f"{str(base.dtype).removeprefix('torch.')} codes of {cut.name}, shift {int(steps)} steps",
            "node": cut.name,
            "clipped": clipped,
            "codes": base.numpy(),
            "shifted_codes": moved.numpy(),
            "logits": reference,
        },
    )
