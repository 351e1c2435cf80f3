"""Grad-CAM's second method for a PT2E program: autograd through its fake-quant simulation (the primary,
finite differences on the program cut at the layer's codes, is `backends.torch.pt2e_cut`).

A PT2E-converted program (`torch.export.load(path).module()`) is an FX graph of float ops between
`quantized_decomposed` quantize/dequantize nodes, with int8 weight constants dequantized per channel.
Its integer rounding has no gradient, so the simulation keeps every quantization parameter and replaces:

- each activation quantize -> dequantize pair by `torch.fake_quantize_per_tensor_affine` (or
  `..._per_channel_affine`) with the same scale, zero point and code range: the same forward values
  (bit-identical here), and the straight-through gradient (1 inside the code range, 0 where clipped);
- each dequantize of a constant (the int8 weights) by its float value, computed once.

The feature layer is found through `node.meta["nn_module_stack"]`: the last node whose stack holds the
layer path is the layer's output; if the next op reads it through a quantize/dequantize pair, the
dequantized value is what the rest of the network sees, so that is the feature tensor A. A `_Tap`
module inserted there gives `gradcam_autograd` a module to hook (the model lists them in `gradcam_taps`).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from bench.errors import UsageError
from bench.gradcam.method import TAPS_ATTRIBUTE, UnsupportedProgram, gradcam_autograd

QUANTIZE = ("quantize_per_tensor", "quantize_per_channel")
DEQUANTIZE = ("dequantize_per_tensor", "dequantize_per_channel")


class _Tap(nn.Identity):
    """Marks the feature tensor in the rewritten graph; a forward hook on it sees A."""


def decomposed_op(node: fx.Node) -> str:
    """`quantized_decomposed.quantize_per_tensor.tensor` -> "quantize_per_tensor" (other ops: "")."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return ""
    packet = node.target._schema.name  # e.g. "quantized_decomposed::quantize_per_tensor"
    namespace, _, name = packet.partition("::")
    return name if namespace == "quantized_decomposed" else ""


def constant_arg(module: nn.Module, value: Any) -> Any:
    """A node argument's concrete value: a get_attr tensor from the module, a literal as is."""
    if isinstance(value, fx.Node):
        if value.op != "get_attr":
            raise UnsupportedProgram(
                f"quantization parameter {value.name} is computed at run time "
                f"({value.op} {value.target}); only constant parameters can be simulated"
            )
        owner, _, attr = str(value.target).rpartition(".")
        return getattr(module.get_submodule(owner) if owner else module, attr)
    return value


def bound_args(node: fx.Node) -> dict[str, Any]:
    """The op's arguments by schema name (positional and keyword alike)."""
    schema = node.target._schema
    named = {arg.name: arg.default_value for arg in schema.arguments if arg.has_default_value()}
    named.update({arg.name: value for arg, value in zip(schema.arguments, node.args)})
    named.update(node.kwargs)
    return named


def _constant_value(module: nn.Module, node: fx.Node) -> torch.Tensor:
    """Evaluate a chain of quantize/dequantize ops over get_attr constants (the folded int8 weights)."""
    if node.op == "get_attr":
        return constant_arg(module, node)
    args = [_constant_value(module, a) if isinstance(a, fx.Node) else a for a in node.args]
    kwargs = {k: _constant_value(module, v) if isinstance(v, fx.Node) else v for k, v in node.kwargs.items()}
    return node.target(*args, **kwargs)


def _is_constant(node: fx.Node) -> bool:
    return node.op == "get_attr" or (bool(decomposed_op(node)) and all(_is_constant(a) for a in node.all_input_nodes))


def _same_params(module: nn.Module, quant: dict[str, Any], dequant: dict[str, Any], keys: Sequence[str]) -> bool:
    """The pair quantizes and dequantizes with the same values (literals or constants)."""
    for key in keys:
        a, b = constant_arg(module, quant.get(key)), constant_arg(module, dequant.get(key))
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
                return False
        elif a != b:
            return False
    return True


def _fake_quant_node(
    graph: fx.Graph, module: nn.Module, dequant: fx.Node, quant: fx.Node, counter: list[int]
) -> fx.Node:
    """A straight-through fake-quant node with the pair's parameters, inserted before `dequant`."""
    q, dq = bound_args(quant), bound_args(dequant)
    name = decomposed_op(quant)
    if name == "quantize_per_tensor":
        if not _same_params(module, q, dq, ("scale", "zero_point", "quant_min", "quant_max")):
            raise UnsupportedProgram(f"{quant.name} and {dequant.name} use different quantization parameters")
        scale, zero_point = constant_arg(module, q["scale"]), constant_arg(module, q["zero_point"])
        with graph.inserting_before(dequant):
            if isinstance(scale, torch.Tensor) or isinstance(zero_point, torch.Tensor):
                attrs = _register(
                    module,
                    counter,
                    scale=torch.as_tensor(scale, dtype=torch.float32).reshape(()),
                    zero_point=torch.as_tensor(zero_point, dtype=torch.int32).reshape(()),
                )
                scale_node, zp_node = (graph.get_attr(a) for a in attrs)
                return graph.call_function(
                    torch.fake_quantize_per_tensor_affine,
                    (q["input"], scale_node, zp_node, int(q["quant_min"]), int(q["quant_max"])),
                )
            return graph.call_function(
                torch.fake_quantize_per_tensor_affine,
                (q["input"], float(scale), int(zero_point), int(q["quant_min"]), int(q["quant_max"])),
            )
    if name == "quantize_per_channel":
        if not _same_params(module, q, dq, ("scales", "zero_points", "axis", "quant_min", "quant_max")):
            raise UnsupportedProgram(f"{quant.name} and {dequant.name} use different quantization parameters")
        scale = torch.as_tensor(constant_arg(module, q["scales"]), dtype=torch.float32)
        zero_point = torch.as_tensor(constant_arg(module, q["zero_points"])).to(torch.int32)
        attrs = _register(module, counter, scale=scale, zero_point=zero_point)
        with graph.inserting_before(dequant):
            scale_node, zp_node = (graph.get_attr(a) for a in attrs)
            return graph.call_function(
                torch.fake_quantize_per_channel_affine,
                (q["input"], scale_node, zp_node, int(q["axis"]), int(q["quant_min"]), int(q["quant_max"])),
            )
    raise UnsupportedProgram(f"{quant.name}: no fake-quant equivalent for {name}")


def _register(module: nn.Module, counter: list[int], **tensors: torch.Tensor) -> list[str]:
    names = []
    for key, tensor in tensors.items():
        counter[0] += 1
        name = f"_fakequant_{key}_{counter[0]}"
        module.register_buffer(name, tensor.detach().clone())
        names.append(name)
    return names


def fake_quant_module(program: nn.Module) -> fx.GraphModule:
    """A differentiable copy of a converted PT2E program with the same quantization parameters.

    Raises `UnsupportedProgram` for what it cannot simulate exactly (dynamic quantization, a dequantize
    of a run-time tensor that no quantize produced, mismatched pair parameters)."""
    if not isinstance(program, fx.GraphModule):
        raise UnsupportedProgram(
            f"expected an FX GraphModule (torch.export.load(path).module()), got {type(program).__name__}"
        )
    with warnings.catch_warnings():  # torch's own pytree spec deprecation, raised by copying the module
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        module = copy.deepcopy(program)
    graph = module.graph
    counter = [0]
    for node in list(graph.nodes):
        name = decomposed_op(node)
        if name.startswith("choose_qparams"):
            raise UnsupportedProgram(f"{node.name}: dynamic quantization ({name}) is not simulated")
        if name not in DEQUANTIZE:
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node):
            raise UnsupportedProgram(f"{node.name} dequantizes a non-tensor argument")
        if _is_constant(source):  # int8 weights: dequantize once, keep as a float constant
            value = _constant_value(module, node)
            (attr,) = _register(module, counter, weight=value.to(torch.float32))
            with graph.inserting_before(node):
                replacement = graph.get_attr(attr)
        elif decomposed_op(source) in QUANTIZE:
            replacement = _fake_quant_node(graph, module, node, source, counter)
        else:
            raise UnsupportedProgram(f"{node.name} dequantizes {source.name}, which no quantize node produced")
        replacement.meta = dict(node.meta)
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
    _erase_unused(graph)
    graph.lint()
    module.recompile()
    return module


def _erase_unused(graph: fx.Graph) -> None:
    """Quantize nodes and constants nothing reads any more (in-place float ops are left alone)."""
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph.nodes)):
            if not node.users and (node.op == "get_attr" or decomposed_op(node) in QUANTIZE + DEQUANTIZE):
                graph.erase_node(node)
                changed = True


def module_paths(graph: fx.Graph) -> list[str]:
    """Every module path recorded in the graph's `nn_module_stack` metadata, in first-seen order."""
    seen: dict[str, None] = {}
    for node in graph.nodes:
        for path, _ in (node.meta.get("nn_module_stack") or {}).values():
            if path:
                seen.setdefault(path, None)
    return list(seen)


def layer_output(graph: fx.Graph, layer: str) -> fx.Node:
    """The node carrying the layer's output as the next op reads it: the last node whose module stack
    contains `layer`, or the fake-quant node after it when every reader goes through that one node."""
    inside = [
        n
        for n in graph.nodes
        if n.op == "call_function" and any(path == layer for path, _ in (n.meta.get("nn_module_stack") or {}).values())
    ]
    if not inside:
        valid = module_paths(graph)
        shown = ", ".join(valid[-8:]) + (", ..." if len(valid) > 8 else "")
        raise UsageError(f"Grad-CAM layer '{layer}' is not in the quantized program; valid layers include: {shown}")
    node = inside[-1]
    users = list(node.users)
    fake = (torch.fake_quantize_per_tensor_affine, torch.fake_quantize_per_channel_affine)
    if len(users) == 1 and users[0].target in fake:
        return users[0]
    return node


def add_taps(
    module: fx.GraphModule, layers: Sequence[str], locate: Callable[[fx.Graph, str], fx.Node] = layer_output
) -> fx.GraphModule:
    """Insert a `_Tap` after each layer's output (`locate(graph, layer)`) and list them in
    `module.gradcam_taps` (layer -> tap)."""
    taps: dict[str, nn.Module] = {}
    graph = module.graph
    for i, layer in enumerate(layers):
        node = locate(graph, layer)
        name = f"_gradcam_tap_{i}"
        tap = _Tap()
        module.add_submodule(name, tap)
        with graph.inserting_after(node):
            tapped = graph.call_module(name, (node,))
        tapped.meta = dict(node.meta)
        node.replace_all_uses_with(tapped, delete_user_cb=lambda user, tapped=tapped: user is not tapped)
        taps[layer] = tap
    graph.lint()
    module.recompile()
    setattr(module, TAPS_ATTRIBUTE, taps)  # a plain dict: the taps are registered once, as _gradcam_tap_<i>
    return module


def load_program(path: Path) -> fx.GraphModule:
    """The saved PT2E program, uncompiled (the quantized_decomposed ops must be registered first)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401  registers the ops

    return torch.export.load(str(path)).module()


def max_forward_difference(program: nn.Module, simulated: nn.Module, images: np.ndarray) -> float:
    """Largest |logit difference| between the program and its simulation on `images`."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    with torch.no_grad():
        return float((program(x) - simulated(x)).abs().max())


def gradcam_fakequant(
    program: nn.Module,
    images: np.ndarray,
    layers: Sequence[str],
    classes: Sequence[int],
    batch_size: int = 4,
    check_atol: float | None = 1e-4,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Grad-CAM maps {layer: (N, len(classes), H, W)} of a converted PT2E program by autograd through its
    fake-quant simulation, and facts about it (`max_abs_vs_program`, `seconds`).

    With `check_atol`, the simulation's logits must match the program's on the images within it, or
    `UnsupportedProgram` is raised: maps of a simulation that computes something else would mislead."""
    start = time.perf_counter()
    simulated = add_taps(fake_quant_module(program), layers).eval()
    return gradcam_simulation(program, simulated, images, layers, classes, batch_size, check_atol, start)


def gradcam_simulation(
    program: nn.Module,
    simulated: nn.Module,
    images: np.ndarray,
    layers: Sequence[str],
    classes: Sequence[int],
    batch_size: int = 4,
    check_atol: float | None = None,
    start: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Autograd maps of a tapped simulation of `program`, with how far its logits are from the
    program's on the images (`max_abs_vs_program`, and `program_max_abs`, the program's largest |logit|)."""
    start = time.perf_counter() if start is None else start
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    drift, scale = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            reference = program(x[i : i + batch_size])
            reference = reference[0] if isinstance(reference, (tuple, list)) else reference
            drift = max(drift, float((reference - simulated(x[i : i + batch_size])).abs().max()))
            scale = max(scale, float(reference.abs().max()))
    if check_atol is not None and not drift <= check_atol:
        raise UnsupportedProgram(
            f"the fake-quant simulation differs from the program by {drift:.3g} "
            f"(max |logit difference| > {check_atol:g})"
        )
    maps = gradcam_autograd(simulated, images, layers, classes, dtype=torch.float32, batch_size=batch_size)
    return maps, {"max_abs_vs_program": drift, "program_max_abs": scale, "seconds": time.perf_counter() - start}
