"""Fake-quant simulation of an ONNX Runtime QDQ graph, for Grad-CAM by autograd (the second method beside
finite differences on ONNX Runtime's own head, `backends.onnxruntime.gradcam_cut`).

Over 400 lines (464), and kept whole: one interpreter of the QDQ op set. Each op is a row of the table
and the torch function the row names, which change together, and the table is checked against the whole
graph before a step runs; split in two, every op would live in two files.

The QDQ graph is interpreted node by node with torch ops, so autograd runs through it:

- an activation's QuantizeLinear -> DequantizeLinear pair becomes straight-through fake quantization
  with the pair's own scale, zero point and code range (round half to even, as ONNX; the gradient is 1
  inside the code range and 0 where the code clips);
- a DequantizeLinear of an int8 initializer (a weight) is computed once, as the float constant ONNX
  Runtime's kernels compute with;
- every other node runs its float torch equivalent.

ONNX Runtime itself fuses DQ -> Conv -> Q into integer kernels that requantize inside, so the simulation
is close to the deployed session, not identical: the caller states the largest logit difference.
onnx2torch would provide the float ops, but it requires torchvision (which does not work with this CPU
torch) and has no Q/DQ converters; the ops below are the ones segbench's exports produce, and any other
raises `UnsupportedProgram` (the finite-difference maps then stand alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.gradcam.method import TAPS_ATTRIBUTE, UnsupportedProgram

Op = Callable[["OnnxFakeQuant", Any, list[Any]], Any]
OPS: dict[str, Op] = {}


def _op(*names: str) -> Callable[[Op], Op]:
    def register(fn: Op) -> Op:
        for name in names:
            OPS[name] = fn
        return fn

    return register


class _Tap(nn.Identity):
    """Marks a feature tensor; a forward hook on it sees A (dequantized, as the next ops read it)."""


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _code_range(zero_point: torch.Tensor | None) -> tuple[int, int]:
    dtype = torch.uint8 if zero_point is None else zero_point.dtype
    info = torch.iinfo(dtype)
    return int(info.min), int(info.max)


def _along(value: torch.Tensor, axis: int, ndim: int) -> torch.Tensor:
    """A per-channel parameter shaped to broadcast along `axis` of an `ndim` tensor."""
    if value.ndim == 0 or value.numel() == 1:
        return value.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return value.reshape(shape)


class OnnxFakeQuant(nn.Module):
    """A QDQ ONNX graph as a differentiable torch module (see the module docstring). `taps` maps a
    Grad-CAM layer to the tensor whose (dequantized) value is its feature map A."""

    def __init__(self, model_path: Path, taps: dict[str, str] | None = None) -> None:
        import onnx
        from onnx import numpy_helper

        super().__init__()
        model = onnx.load(str(model_path))
        graph = model.graph
        self.nodes = list(graph.node)
        self.input_name = graph.input[0].name
        self.output_name = graph.output[0].name
        self.constants: dict[str, torch.Tensor] = {
            init.name: torch.from_numpy(np.array(numpy_helper.to_array(init))) for init in graph.initializer
        }
        for node in self.nodes:
            if node.op_type not in OPS:
                raise UnsupportedProgram(f"the ONNX fake-quant simulation has no {node.op_type} ({node.name})")
        produced = {out for node in self.nodes for out in node.output}
        readers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        self.tap_names: dict[str, str] = {}  # the tensor whose value is tapped -> layer
        tap_modules: dict[str, nn.Module] = {}
        self.missing: list[str] = []  # layers whose tensor the graph no longer has (fused away)
        for i, (layer, tensor) in enumerate((taps or {}).items()):
            if tensor not in produced:
                self.missing.append(layer)
                continue
            reading = readers.get(tensor, [])
            # A read only through one Q/DQ pair: tap its codes (dequantized once, shared by every reader);
            # read otherwise too (a float op, a second quantizer): tap A itself, so every path is seen
            through_codes = len(reading) == 1 and reading[0].op_type == "QuantizeLinear"
            self.tap_names[reading[0].output[0] if through_codes else tensor] = layer
            tap = _Tap()
            self.add_module(f"_gradcam_tap_{i}", tap)
            tap_modules[layer] = tap
        setattr(self, TAPS_ATTRIBUTE, tap_modules)
        self._weights: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, Any] = {self.input_name: x, "": None}
        taps = getattr(self, TAPS_ATTRIBUTE)
        for node in self.nodes:
            inputs = [env[n] if n in env else self.constants.get(n) for n in node.input]
            outputs = OPS[node.op_type](self, node, inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            for name, value in zip(node.output, outputs):
                if name in self.tap_names:
                    value = (
                        _TappedCodes(value, taps[self.tap_names[name]])
                        if node.op_type == "QuantizeLinear"
                        else taps[self.tap_names[name]](value)
                    )
                env[name] = value
        return env[self.output_name]


class _TappedCodes:
    """The fake codes of a tapped QuantizeLinear: its readers (DequantizeLinear) get one shared,
    tapped, dequantized tensor, so the tap runs once per forward pass."""

    def __init__(self, codes: torch.Tensor, tap: nn.Module) -> None:
        self.codes, self.tap, self.value = codes, tap, None

    def dequantized(self, scale: torch.Tensor, zero_point: torch.Tensor | None, axis: int) -> torch.Tensor:
        if self.value is None:
            self.value = self.tap(_dequantize(self.codes, scale, zero_point, axis))
        return self.value


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _dequantize(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None, axis: int) -> torch.Tensor:
    zp = torch.zeros(()) if zero_point is None else zero_point.to(torch.float32)
    return (codes.to(torch.float32) - _along(zp, axis, codes.ndim)) * _along(scale.float(), axis, codes.ndim)


@_op("QuantizeLinear")
def _quantize(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x, scale = inputs[0], inputs[1]
    zero_point = inputs[2] if len(inputs) > 2 else None
    axis = _attrs(node).get("axis", 1)
    low, high = _code_range(zero_point)
    zp = torch.zeros(()) if zero_point is None else zero_point.to(torch.float32)
    codes = _round_ste(x / _along(scale.float(), axis, x.ndim)) + _along(zp, axis, x.ndim)
    return torch.clamp(codes, low, high)  # clamp's gradient is 0 outside the range: straight-through


@_op("DequantizeLinear")
def _dequantize_node(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    codes, scale = inputs[0], inputs[1]
    zero_point = inputs[2] if len(inputs) > 2 else None
    axis = _attrs(node).get("axis", 1)
    if isinstance(codes, _TappedCodes):
        return codes.dequantized(scale, zero_point, axis)
    if node.input[0] in sim.constants:  # an int8 weight: dequantized once
        if node.output[0] not in sim._weights:
            sim._weights[node.output[0]] = _dequantize(codes, scale, zero_point, axis).detach()
        return sim._weights[node.output[0]]
    return _dequantize(codes, scale, zero_point, axis)


def _pads(attrs: dict[str, Any], dims: int) -> tuple[list[int], bool]:
    """(symmetric per-dim padding, whether it is symmetric) from ONNX's begin..end pads."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedProgram(f"auto_pad {attrs['auto_pad']!r} is not simulated")
    pads = list(attrs.get("pads", [0] * 2 * dims))
    return pads[:dims], pads[:dims] == pads[dims:]


@_op("Conv", "ConvTranspose")
def _conv(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    attrs = _attrs(node)
    dims = weight.ndim - 2
    pads, symmetric = _pads(attrs, dims)
    if not symmetric or "output_shape" in attrs:
        raise UnsupportedProgram(f"{node.op_type} {node.name}: asymmetric padding or output_shape is not simulated")
    strides, dilations = list(attrs.get("strides", [1] * dims)), list(attrs.get("dilations", [1] * dims))
    group = int(attrs.get("group", 1))
    if node.op_type == "Conv":
        return (F.conv1d, F.conv2d, F.conv3d)[dims - 1](x, weight, bias, strides, pads, dilations, group)
    output_padding = list(attrs.get("output_padding", [0] * dims))
    transposed = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    return transposed(x, weight, bias, strides, pads, output_padding, group, dilations)


@_op("MaxPool")
def _max_pool(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedProgram(f"MaxPool {node.name} with indices is not simulated")
    kernel = list(attrs["kernel_shape"])
    pads, symmetric = _pads(attrs, len(kernel))
    if not symmetric:
        raise UnsupportedProgram(f"asymmetric MaxPool padding in {node.name} is not simulated")
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[len(kernel) - 1]
    return pool(
        inputs[0],
        kernel,
        list(attrs.get("strides", [1] * len(kernel))),  # ONNX: stride 1 unless given
        pads,
        list(attrs.get("dilations", [1] * len(kernel))),
        bool(attrs.get("ceil_mode", 0)),
    )


@_op("Resize")
def _resize(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)
    x = inputs[0]
    scales = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].numel() else None
    sizes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    size = [int(s) for s in sizes.tolist()[2:]] if sizes is not None else None
    factor = [float(s) for s in scales.tolist()[2:]] if size is None and scales is not None else None
    mode = (
        attrs.get("mode", b"nearest").decode() if isinstance(attrs.get("mode"), bytes) else attrs.get("mode", "nearest")
    )
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel")
    transform = transform.decode() if isinstance(transform, bytes) else transform
    if mode == "linear":
        if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise UnsupportedProgram(f"Resize {node.name}: linear with {transform} is not simulated")
        interpolation = ("linear", "bilinear", "trilinear")[x.ndim - 3]
        return F.interpolate(
            x, size=size, scale_factor=factor, mode=interpolation, align_corners=transform == "align_corners"
        )
    nearest = attrs.get("nearest_mode", b"round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    if mode == "nearest" and transform == "asymmetric" and nearest == "floor":
        return F.interpolate(x, size=size, scale_factor=factor, mode="nearest")
    raise UnsupportedProgram(f"Resize {node.name}: mode {mode} with {transform} ({nearest}) is not simulated")


@_op("Relu")
def _relu(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    return F.relu(inputs[0])


@_op("PRelu")
def _prelu(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x, slope = inputs
    return torch.where(x >= 0, x, x * slope)


@_op("Sigmoid")
def _sigmoid(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    return torch.sigmoid(inputs[0])


@_op("HardSigmoid")
def _hard_sigmoid(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)
    return torch.clamp(float(attrs.get("alpha", 0.2)) * inputs[0] + float(attrs.get("beta", 0.5)), 0.0, 1.0)


@_op("Gelu")
def _gelu(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    approximate = _attrs(node).get("approximate", b"none")
    return F.gelu(inputs[0], approximate=approximate.decode() if isinstance(approximate, bytes) else approximate)


@_op("Softmax")
def _softmax(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    return torch.softmax(inputs[0], dim=int(_attrs(node).get("axis", -1)))  # opset 13: one axis, default -1


@_op("LayerNormalization")
def _layer_norm(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(attrs.get("axis", -1)) % x.ndim
    return F.layer_norm(x, tuple(x.shape[axis:]), scale, bias, float(attrs.get("epsilon", 1e-5)))


@_op("MatMul")
def _matmul(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    return torch.matmul(inputs[0], inputs[1])


@_op("Clip")
def _clip(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)  # before opset 11 the bounds are attributes
    low = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    high = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    return torch.clamp(inputs[0], None if low is None else float(low), None if high is None else float(high))


@_op("Add", "Sub", "Mul", "Div")
def _arithmetic(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    a, b = inputs
    if node.op_type == "Div" and not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates
    return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[node.op_type](a, b)


@_op("Concat")
def _concat(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    return torch.cat(list(inputs), dim=int(_attrs(node)["axis"]))


@_op("GlobalAveragePool")
def _global_average(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x = inputs[0]
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


@_op("AveragePool")
def _average_pool(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)
    kernel = list(attrs["kernel_shape"])
    pads, symmetric = _pads(attrs, len(kernel))
    if not symmetric or len(kernel) != 2:
        raise UnsupportedProgram(f"AveragePool {node.name} is not simulated")
    return F.avg_pool2d(
        inputs[0],
        kernel,
        list(attrs.get("strides", [1] * len(kernel))),  # ONNX: stride 1 unless given
        pads,
        bool(attrs.get("ceil_mode", 0)),
        bool(attrs.get("count_include_pad", 0)),
    )


@_op("Identity")
def _identity(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    return inputs[0]


@_op("Constant")
def _constant(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    from onnx import numpy_helper

    return torch.from_numpy(np.array(numpy_helper.to_array(_attrs(node)["value"])))


@_op("Shape")
def _shape(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)  # opset 15: the dimensions start..end only
    dims = list(inputs[0].shape)
    return torch.tensor(dims[attrs.get("start", 0) : attrs.get("end", len(dims))], dtype=torch.int64)


@_op("ReduceMean")
def _reduce_mean(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    attrs = _attrs(node)  # opset 18: axes as an input; before, an attribute
    x = inputs[0]
    axes = inputs[1].tolist() if len(inputs) > 1 and inputs[1] is not None else attrs.get("axes")
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.ndim))
    return x.mean(dim=tuple(int(a) for a in axes), keepdim=bool(attrs.get("keepdims", 1)))


@_op("Reshape")
def _reshape(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x, shape = inputs
    target = [int(s) for s in shape.tolist()]
    target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


@_op("Transpose")
def _transpose(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x = inputs[0]
    perm = _attrs(node).get("perm", list(reversed(range(x.ndim))))
    return x.permute(*perm)


@_op("Flatten")
def _flatten(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x = inputs[0]
    axis = int(_attrs(node).get("axis", 1)) % max(x.ndim, 1)
    return x.reshape(math.prod(x.shape[:axis]), -1)


@_op("Unsqueeze", "Squeeze")
def _unsqueeze(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x = inputs[0]
    axes = [
        int(a)
        for a in (inputs[1].tolist() if len(inputs) > 1 and inputs[1] is not None else _attrs(node).get("axes", []))
    ]
    if node.op_type == "Squeeze":
        return x.squeeze(tuple(axes)) if axes else x.squeeze()
    for axis in sorted(a % (x.ndim + len(axes)) for a in axes):
        x = x.unsqueeze(axis)
    return x


@_op("Cast")
def _cast(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    import onnx

    dtype = onnx.helper.tensor_dtype_to_np_dtype(_attrs(node)["to"])
    return inputs[0].to(torch.from_numpy(np.zeros(0, dtype=dtype)).dtype)


@_op("Gather")
def _gather(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x, index = inputs
    axis = int(_attrs(node).get("axis", 0))
    return torch.index_select(x, axis, index.reshape(-1).long()).reshape(
        *x.shape[:axis], *index.shape, *x.shape[axis + 1 :]
    )


@_op("Slice")
def _slice(sim: OnnxFakeQuant, node: Any, inputs: list[Any]) -> torch.Tensor:
    x, starts, ends = inputs[:3]
    axes = inputs[3].tolist() if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = inputs[4].tolist() if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts.tolist(), ends.tolist(), axes, steps):
        if step < 1:
            raise UnsupportedProgram(f"Slice {node.name} with a negative step is not simulated")
        size = x.shape[int(axis)]  # ONNX clamps to the axis; torch warns on INT64_MIN (SegFormer's `[:-2]`)
        index[int(axis)] = slice(int(max(start, -size)), int(min(end, size)), int(step))
    return x[tuple(index)]


def simulation_vs_session(
    simulated: nn.Module, model_path: Path, images: np.ndarray, threads: int
) -> tuple[float, float]:
    """(largest |logit| difference between the simulation and ONNX Runtime's own session, the session's
    largest |logit|) on `images`, one at a time."""
    import onnxruntime as ort

    from backends.onnxruntime.session import providers_for, session_options

    session = ort.InferenceSession(str(model_path), session_options(threads), providers=providers_for("cpu"))
    name = session.get_inputs()[0].name
    drift, scale = 0.0, 0.0
    with torch.no_grad():
        for i in range(len(images)):
            deployed = session.run(None, {name: images[i : i + 1]})[0]
            simulated_logits = simulated(torch.from_numpy(np.ascontiguousarray(images[i : i + 1]))).numpy()
            drift = max(drift, float(np.max(np.abs(deployed.astype(np.float64) - simulated_logits))))
            scale = max(scale, float(np.max(np.abs(deployed))))
    return drift, scale
