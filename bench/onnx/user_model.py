"""A user's own ONNX file (`--onnx FILE`) for the ONNX-based backends, checked against the suite.

The file is validated once, before any cell runs (one input of rank 4 whose channel and spatial sizes
fit the suite, one logits output), then normalized into the cache: weights embedded (a size taken
without the external-data file would be wrong), input and output renamed to the names the ONNX
backends use, and the batch dimension made symbolic so calibration, batched timing and Grad-CAM's
batched head passes all work on a file exported with a fixed batch of 1.
"""

from __future__ import annotations

from pathlib import Path

from bench.cache import atomic_write_bytes, cache_root, file_digest, stable_hash
from bench.errors import UsageError
from bench.onnx.names import INPUT_NAME, OUTPUT_NAME


def _dims(value_info) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def check_onnx_fits(path: Path, in_channels: int, input_size: tuple[int, int], num_classes: int) -> None:
    """One-line errors for a file that cannot run on the suite's images."""
    import onnx

    if not path.is_file():
        raise UsageError(f"--onnx '{path}' does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(f"--onnx '{path}': not a readable ONNX model: {type(exc).__name__}: {exc}") from exc
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise UsageError(
            f"--onnx '{path}': expected one image input and one logits output, found "
            f"{len(inputs)} input(s) and {len(model.graph.output)} output(s)"
        )
    dims = _dims(inputs[0])
    expected = [None, in_channels, *input_size]
    if len(dims) != 4 or any(isinstance(d, int) and d > 0 and e is not None and d != e for d, e in zip(dims, expected)):
        raise UsageError(
            f"--onnx '{path}': input '{inputs[0].name}' has shape {dims}, which does not fit the suite's "
            f"(N, {in_channels}, {input_size[0]}, {input_size[1]}) images"
        )
    out = _dims(model.graph.output[0])
    if len(out) == 4 and isinstance(out[1], int) and out[1] > 0 and out[1] not in (num_classes, 1):
        raise UsageError(
            f"--onnx '{path}': output '{model.graph.output[0].name}' has {out[1]} channels; "
            f"the suite has {num_classes} classes"
        )


def _rename(model, old: str, new: str) -> None:
    if old == new:
        return
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if value.name == old:
            value.name = new


def import_onnx(path: Path, in_channels: int, input_size: tuple[int, int], num_classes: int) -> Path:
    """The checked, normalized copy of `path` in the cache (made once per file content)."""
    import onnx

    check_onnx_fits(path, in_channels, input_size, num_classes)
    # a folder per content, the user's file name inside it: the rows' notes name the file they gave
    target = cache_root() / "onnx" / stable_hash({"file": file_digest(path), "v": 1}) / path.name
    if target.exists():
        return target
    model = onnx.load(str(path))  # external data beside the file is read and embedded
    initializers = {i.name for i in model.graph.initializer}
    image_input = next(i for i in model.graph.input if i.name not in initializers)
    _rename(model, image_input.name, INPUT_NAME)
    _rename(model, model.graph.output[0].name, OUTPUT_NAME)
    for value in (image_input, model.graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
    del model.graph.value_info[:]  # shapes inferred for a fixed batch would contradict the symbolic one
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise UsageError(f"--onnx '{path}': invalid ONNX model: {str(exc).splitlines()[0]}") from exc
    atomic_write_bytes(target, model.SerializeToString())
    return target
