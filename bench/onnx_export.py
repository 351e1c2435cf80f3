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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: "nn.Module", input_shape: tuple[int, int, int], path: Path, max_batch: int = 256) -> Path:
    """Export with a dynamic batch dimension and embedded weights; returns `path`."""
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    example = torch.zeros(1, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    forward_arg = next(iter(_forward_parameters(model)))
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model.eval(), (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={forward_arg: {0: batch}}, dynamo=True, external_data=False,
        )
    return path


def _forward_parameters(model: "nn.Module") -> list[str]:
    import inspect

    return [n for n in inspect.signature(model.forward).parameters if n != "self"]
