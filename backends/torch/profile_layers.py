"""Which model layer each profiled operator of a compiled torch runtime implements (`Session.profile` of
torch-fx-int8 and torchao-pt2e-int8), apart from the profiled pass itself (`backends.torch.profile`):

- TorchScript (`script_op_sequence`, `layers_in_graph_order`): no module is left to hook and the profiler
  sees no submodule call, but the graph still holds the calls; its operators in execution order, each
  with the module path it was called from, are aligned with each call's profiled operators by name.
- Inductor (`program_layers`, `layers_by_shapes`): no module survives compilation; an extern conv,
  linear or pool op is matched to the uncompiled program's op of that kind with the same weight and
  input shapes (the first unused one in graph order), whose `nn_module_stack` names the layer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.torch.profile import WEIGHTED_FAMILIES, OpEvent, op_family

if TYPE_CHECKING:
    from torch import fx, jit

# TorchScript nodes that turn a one-element tensor into a number (a quantized op's scale held as a
# tensor): the interpreter runs them as Tensor.item(), which is what the profiler records.
_RECORDED_AS = dict.fromkeys(
    ("aten::Float", "aten::Int", "aten::ScalarImplicit", "aten::FloatImplicit", "aten::IntImplicit"), "aten::item"
)


# --- TorchScript: the graph's operators in order, with the module each was called from -----------------


def _nodes(nodes: Any) -> Iterator[Any]:
    """A graph's nodes in program order, each block's nodes right after the node that owns it."""
    for node in nodes:
        yield node
        for block in node.blocks():
            yield from _nodes(block.nodes())


def _top_level_calls(graph: Any) -> list[tuple[str, str]]:
    """(module path, attribute name) of each submodule call of the top-level graph, in program order:
    the path from the chain of prim::GetAttr that fetched the submodule from `self`."""
    paths = {next(iter(graph.inputs())).unique(): ""}
    calls = []
    for node in _nodes(graph.nodes()):
        kind = node.kind()
        if kind == "prim::GetAttr" and node.input().unique() in paths:
            owner, name = paths[node.input().unique()], node.s("name")
            paths[node.output().unique()] = f"{owner}.{name}" if owner else name
        elif kind == "prim::CallMethod" and node.inputsAt(0).unique() in paths:
            path = paths[node.inputsAt(0).unique()]
            calls.append((path, path.rpartition(".")[2]))
    return calls


def _call_levels(hierarchy: str) -> list[str]:
    """The attribute names of the method calls a node was inlined from, outermost first, up to the first
    function call ('0(ConvReLU2d).UNKNOWN_INSTANCE(UNKNOWN_TYPE)' -> ['0']), without a module's calls of
    its own methods (SELF); [] for a node of the top-level graph itself or of a function it calls."""
    names = re.findall(r"([^.()]+)\([^()]*\)", hierarchy)
    return [name for name in itertools.takewhile(lambda name: name != "UNKNOWN_INSTANCE", names) if name != "SELF"]


def script_op_sequence(module: jit.ScriptModule) -> list[tuple[str, str]]:
    """(op kind, module path) of every non-prim node the interpreter may run, in program order.

    The inlined graph holds every op (submodule methods and functions alike) and, per node, the chain of
    calls it was inlined from, but each level names only the attribute the call went through ('0', not
    'encoder.0.0' when the graph fetched encoder, 0 and 0 before calling); the un-inlined graph's GetAttr
    chains give each top-level call's whole path, in order. Each run of nodes inlined from one call takes
    the next top-level call of that attribute name; a call nested in it adds its attribute name (exact for
    `self.child(x)`, as nn.Sequential makes them). Ops of the top-level graph (quantize, dequantize, cat,
    functional calls) get "".
    """
    import torch

    calls = _top_level_calls(module.graph)
    graph = module.graph.copy()
    torch._C._jit_pass_inline(graph)
    sequence: list[tuple[str, str]] = []
    cursor, current, current_level = 0, "", None
    for node in _nodes(graph.nodes()):
        levels, kind = _call_levels(node.getModuleHierarchy()), node.kind()
        if not levels:
            if kind == "prim::GetAttr" or not kind.startswith("prim::"):  # back in the top-level graph
                current_level = None
            path = ""
        else:
            if levels[0] != current_level:  # the next call's nodes begin
                hit = next((i for i in range(cursor, len(calls)) if calls[i][1] == levels[0]), None)
                cursor, current = (hit + 1, calls[hit][0]) if hit is not None else (cursor, "")
                current_level = levels[0]
            path = ".".join([current, *levels[1:]]) if current else ""
        if not kind.startswith("prim::"):
            sequence.append((_RECORDED_AS.get(kind, kind), path))
    return sequence


def align(names: Sequence[str], kinds: Sequence[str]) -> list[int | None]:
    """For each name, the index of the kind it is matched to in a longest common subsequence of the two
    (both keep their order; graph nodes that did not run, or record no event, are skipped), or None."""
    n, m = len(names), len(kinds)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if names[i] == kinds[j] else max(below[j], row[j + 1])
    matched: list[int | None] = []
    i = j = 0
    while i < n:
        if j < m and names[i] == kinds[j]:
            matched.append(j)
            i, j = i + 1, j + 1
        elif j < m and table[i][j + 1] >= table[i + 1][j]:
            j += 1
        else:
            matched.append(None)
            i += 1
    return matched


def layers_in_graph_order(events: Sequence[OpEvent], sequence: Sequence[tuple[str, str]]) -> tuple[list[str], int]:
    """Each event's layer from its aligned graph node, call by call; and how many matched no node."""
    names = {event.name for event in events}
    nodes = [(kind, path) for kind, path in sequence if kind in names]
    kinds = [kind for kind, _ in nodes]
    by_call: dict[int, list[OpEvent]] = {}
    for event in events:
        by_call.setdefault(event.call, []).append(event)
    alignments: dict[tuple[str, ...], list[int | None]] = {}  # every call usually runs the same ops
    layers: list[str] = []
    unmatched = 0
    for call in sorted(by_call):
        called = tuple(event.name for event in by_call[call])
        if called not in alignments:
            alignments[called] = align(called, kinds)
        for index in alignments[called]:
            unmatched += index is None
            layers.append("" if index is None else nodes[index][1])
    return layers, unmatched


# --- Inductor: extern ops matched to the uncompiled program's layers by shapes ---------------------------


@dataclass(frozen=True)
class ProgramLayer:
    """A conv, linear or pool op of an uncompiled (exported) program, and the layer it belongs to."""

    family: str
    layer: str
    activation: tuple[int | None, ...]  # input shape without the batch dimension (None: symbolic)
    weight: tuple[int, ...] | None


def _node_shape(arg: Any) -> tuple[int | None, ...] | None:
    value = getattr(arg, "meta", {}).get("val")
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return tuple(int(size) if str(size).isdigit() else None for size in shape)


def program_layers(graph: fx.Graph) -> list[ProgramLayer]:
    """The program's conv, linear and pool ops in graph order, with the innermost module of their
    `nn_module_stack` and their input and weight shapes."""
    found = []
    for node in graph.nodes:
        family = op_family(str(node.target)) if node.op == "call_function" else None
        if family is None or not node.args:
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        activation = _node_shape(node.args[0]) or ()
        weight = _node_shape(node.args[1]) if family in WEIGHTED_FAMILIES and len(node.args) > 1 else None
        found.append(
            ProgramLayer(
                family=family,
                layer=str(stack[-1][0]) if stack else "",
                activation=activation[1:],
                weight=None
                if weight is None or None in weight
                else tuple(int(size) for size in weight if size is not None),
            )
        )
    return found


def _fits(event: OpEvent, candidate: ProgramLayer) -> bool:
    """Same input shape (batch aside) and, for a weighted op, an input of the weight's shape, or of its
    first two dimensions swapped (a prepacked transposed conv or linear weight)."""
    if not event.shapes or len(event.shapes[0]) != len(candidate.activation) + 1:
        return False
    if any(want is not None and want != got for want, got in zip(candidate.activation, event.shapes[0][1:])):
        return False
    weight = candidate.weight
    if candidate.family not in WEIGHTED_FAMILIES:
        return True
    if weight is None or len(weight) < 2:
        return False
    swapped = (weight[1], weight[0], *weight[2:])
    return any(shape in (weight, swapped) for shape in event.shapes[1:])


def layers_by_shapes(events: Sequence[OpEvent], candidates: Sequence[ProgramLayer]) -> tuple[list[str], int]:
    """Each event's layer: the first program op of its kind, not yet taken in this call, whose shapes it
    fits (so identical layers are told apart by order); "" for fused kernels and other ops. Also how
    many conv, linear or pool ops found no program op."""
    layers: list[str] = []
    taken: set[int] = set()
    unmatched, call = 0, None
    for event in events:
        if event.call != call:
            taken, call = set(), event.call
        family = op_family(event.name)
        hit = None
        if family is not None:
            hit = next(
                (
                    i
                    for i, candidate in enumerate(candidates)
                    if i not in taken and candidate.family == family and _fits(event, candidate)
                ),
                None,
            )
            unmatched += hit is None
        if hit is not None:
            taken.add(hit)
        layers.append("" if hit is None else candidates[hit].layer)
    return layers, unmatched
