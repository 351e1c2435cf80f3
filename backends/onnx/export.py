"""ONNX export shared by the ONNX-based backends.

The weights are embedded in the `.onnx` file (`external_data=False`): with the dynamo exporter's
default they land in `<name>.onnx.data`, a size taken from the `.onnx` alone is ~30x too small, and
`quant_pre_process` can lose the data file when it copies the model to a temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.onnx.names import INPUT_NAME, OUTPUT_NAME

# What an exported graph depends on besides torch: the ONNX format and the dynamo exporter's onnxscript.
EXPORT_LIBRARIES = ("onnx", "onnxscript")

if TYPE_CHECKING:
    from torch import nn

    from bench.backend import PrepareContext


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: Path, max_batch: int = 256) -> Path:
    """Export with a dynamic batch dimension and embedded weights; returns `path`."""
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    example = torch.zeros(2, *input_shape)  # two rows: a dimension that is 1 in the example is specialized
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    forward_arg = next(iter(_forward_parameters(model)))
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={forward_arg: {0: batch}},
            dynamo=True,
            external_data=False,
        )
    return path


def fp32_onnx(ctx: PrepareContext, path: Path) -> Path:
    """The float ONNX model an ONNX-based backend starts from: the user's file (--onnx) or an export."""
    import shutil

    if ctx.onnx_path is not None:
        shutil.copyfile(ctx.onnx_path, path)
        return path
    return export_onnx(ctx.model, ctx.input_shape, path)


def onnx_source(ctx: PrepareContext) -> str:
    """Where the float graph came from, for the row's notes."""
    return f"user ONNX {ctx.onnx_path.name}" if ctx.onnx_path is not None else "torch.onnx.export (dynamo)"


NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def node_scopes(node: Any) -> list[str]:
    """The module paths a node of a dynamo export was made in, outermost first (its
    `pkg.torch.onnx.name_scopes` without the root scope and the FX node's own name); [] without it."""
    import ast

    raw = next((p.value for p in node.metadata_props if p.key == NAME_SCOPES_KEY), None)
    if raw is None:
        return []
    try:
        scopes = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return []
    return [str(scope) for scope in scopes[1:-1] if scope]


def layer_tensors(path: Path) -> dict[str, str]:
    """Module path -> the ONNX tensor that carries that module's output, from the dynamo exporter's
    `pkg.torch.onnx.name_scopes` node metadata (e.g. "['', 'decoder.3', 'decoder.3.3', 'relu_17']":
    the root scope, the module paths, then the FX node's own name).

    Nodes are in topological order, so a module's output is output[0] of the last node whose scopes
    contain its path. Computed on the exported float graph: quantization keeps tensor names but drops
    or rewrites nodes (a Conv absorbs the Relu after it), so the mapping is stored with the artifact.
    A graph without that metadata (a user's own ONNX file) maps nothing."""
    import onnx

    found: dict[str, str] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if not node.output or not node.output[0]:
            continue
        for scope in node_scopes(node):
            found[scope] = node.output[0]
    return found


def _forward_parameters(model: nn.Module) -> list[str]:
    import inspect

    return [n for n in inspect.signature(model.forward).parameters if n != "self"]
