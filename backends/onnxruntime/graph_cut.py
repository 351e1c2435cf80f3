"""One ONNX graph cut at one tensor, run by ONNX Runtime on both sides of the cut.

The cut: where a QuantizeLinear reads the tensor A (a QDQ int8 graph), at its 8-bit codes, which is
what the rest of the network reads; elsewhere at A itself. The body is the original graph with extra
outputs (the cut tensor and the head's side inputs, e.g. skip connections); the head is every node
downstream of the cut that leads to the logits, plus the constant work it needs (weight
DequantizeLinear, Constant, shape arithmetic), with the side tensors as inputs, repeated along the
batch, extracted with `onnx.utils.Extractor`. Every session runs with the timed session's threads and
graph optimizations, so ORT fuses the head's DQ -> Conv -> Q into the same int8 kernels as in the full
graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backends.onnx.graph import GraphIndex


class CutUnavailable(ValueError):
    """The graph cannot be cut at that tensor; the message is one line for a row's notes."""


def _onnx() -> Any:
    import onnx
    import onnx.utils

    return onnx


class GraphCut:
    """Body, head and full-model sessions for one tensor of one graph, built once and reused per image
    (session creation costs more than a run). `quant` holds the cut's quantization (scale, zero point,
    code dtype and range) when the cut is at 8-bit codes, else None."""

    def __init__(self, model_path: Path, tensor_name: str, threads: int = 1, device: str = "cpu") -> None:
        import onnxruntime as ort

        from backends.onnxruntime.session import providers_for, session_options

        onnx = _onnx()
        self.path, self.tensor = Path(model_path), tensor_name
        model = onnx.load(str(self.path))
        graph = model.graph
        self._index = GraphIndex(model)
        self._position = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
        self._graph_inputs = self._index.inputs
        if tensor_name not in self._position and tensor_name not in self._graph_inputs:
            raise CutUnavailable(f"tensor '{tensor_name}' is not in {self.path.name}")
        self.cut, self.quant = self._find_cut(tensor_name)
        self.head_nodes, self.sides = self._head(model)
        self._body_outputs = [self.cut] + [s for s in self.sides if s not in self._graph_inputs]
        body = onnx.ModelProto()
        body.CopyFrom(model)
        known = {o.name for o in body.graph.output}
        body.graph.output.extend(onnx.ValueInfoProto(name=n) for n in self._body_outputs if n not in known)
        options, providers = session_options(threads), providers_for(device)
        self._full = ort.InferenceSession(str(self.path), options, providers=providers)
        self._body = ort.InferenceSession(body.SerializeToString(), options, providers=providers)
        self._output = graph.output[0].name
        self._model, self._options, self._providers = model, options, providers
        self._head_session: Any = None
        self.head_model: Any = None  # the head ModelProto, built on the first image (needs the side shapes)
        # True when side inputs must come from the image repeated to the batch size (they encode the
        # batch position, e.g. flat MaxPool indices); `head` then reruns the body per call.
        self.sides_per_row = False

    # -- where to cut -----------------------------------------------------------------------------------

    def _constant(self, name: str) -> np.ndarray:
        value = self._index.constant(name)
        if value is None:
            raise CutUnavailable(f"quantization parameter '{name}' of '{self.tensor}' is not a constant")
        return value

    def _find_cut(self, tensor: str) -> tuple[str, dict[str, Any] | None]:
        """The codes after A's QuantizeLinear (with scale, zero point, code range), or A itself when no
        QuantizeLinear reads it."""
        readers = self._index.readers(tensor)
        quantizers = [n for n in readers if n.op_type == "QuantizeLinear"]
        if not quantizers:
            return tensor, None
        if len(quantizers) > 1 or len(readers) > 1:
            other = next(n for n in readers if n is not quantizers[0])
            raise CutUnavailable(
                f"'{tensor}' is read by {other.op_type} '{other.name}' besides its "
                f"QuantizeLinear, so no single code tensor carries it"
            )
        q = quantizers[0]
        scale = self._constant(q.input[1]).astype(np.float32)
        zero = self._constant(q.input[2]) if len(q.input) > 2 and q.input[2] else np.zeros(scale.shape, np.uint8)
        axis = self._index.attribute(q, "axis", 1)
        if scale.ndim > 1 or (scale.ndim == 1 and scale.size > 1 and axis != 1):
            raise CutUnavailable(f"'{tensor}' is quantized along axis {axis}, not per channel or per tensor")
        info = np.iinfo(zero.dtype)
        return q.output[0], {
            "scale": scale.reshape(-1),
            "zero_point": zero.reshape(-1).astype(np.int64),
            "dtype": zero.dtype,
            "low": int(info.min),
            "high": int(info.max),
        }

    # -- the head: which nodes, which side inputs -------------------------------------------------------

    @staticmethod
    def _types(model: Any) -> dict[str, Any]:
        """Inferred value info by name (graph inputs, value_info, outputs); empty when inference fails."""
        try:
            inferred = _onnx().shape_inference.infer_shapes(model)
        except Exception:
            inferred = model
        g = inferred.graph
        return {v.name: v for v in [*g.input, *g.value_info, *g.output]}

    def _reachable(self, start: str, forward: bool) -> set[int]:
        """Node indices downstream of a tensor (forward) or that a tensor depends on (backward)."""
        graph, frontier = self._model_graph, [start]
        found: set[int] = set()
        while frontier:
            name = frontier.pop()
            if forward:
                nodes = {self._position[node.output[0]] for node in self._index.readers(name)}
            else:
                index = self._position.get(name)
                nodes = set() if index is None else {index}
            for i in nodes - found:
                found.add(i)
                frontier.extend(n for n in (graph.node[i].output if forward else graph.node[i].input) if n)
        return found

    def _head(self, model: Any) -> tuple[list[int], list[str]]:
        """Node indices of the head (graph order) and its side inputs (computed outside it)."""
        graph = self._model_graph = model.graph
        head = self._reachable(self.cut, forward=True) & self._reachable(graph.output[0].name, forward=False)
        if not head:
            raise CutUnavailable(f"the logits '{graph.output[0].name}' do not depend on '{self.tensor}'")
        self._batch = self._batch_dependent(graph)
        types = self._types(model)
        batch_dim = self._batch_dim(types)
        outside = {self.cut, *self._index.initializers}
        changed = True
        while changed:  # pull in constant work and shape arithmetic the head's nodes read
            changed = False
            for i in sorted(head):
                for name in graph.node[i].input:
                    index = self._position.get(name)
                    if not name or name in outside or index is None or index in head:
                        continue
                    node = graph.node[index]
                    if node.op_type in ("Constant", "DequantizeLinear") or (
                        name in self._batch and not self._is_activation(types.get(name), batch_dim)
                    ):
                        head.add(index)
                        changed = True
        produced = {o for i in head for o in graph.node[i].output}
        sides = [n for i in sorted(head) for n in graph.node[i].input if n and n not in outside and n not in produced]
        return sorted(head), list(dict.fromkeys(sides))

    def _batch_dependent(self, graph: Any) -> set[str]:
        found = set(self._graph_inputs)
        for node in graph.node:  # topological order
            if any(n in found for n in node.input):
                found.update(o for o in node.output if o)
        return found

    def _batch_dim(self, types: dict[str, Any]) -> str | None:
        first = types.get(self._graph_inputs[0]) if self._graph_inputs else None
        dims = first.type.tensor_type.shape.dim if first is not None else []
        return (dims[0].dim_param or None) if dims else None

    @staticmethod
    def _is_activation(info: Any, batch_dim: str | None) -> bool:
        """A tensor with the batch as its first dimension (repeated along it); unknown: assume so."""
        if info is None or not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
            return True
        dims = info.type.tensor_type.shape.dim
        if not dims:
            return False
        if batch_dim is not None:
            return dims[0].dim_param == batch_dim
        return dims[0].dim_value == 1 and len(dims) >= 2

    def _repeats(self, name: str, value: np.ndarray) -> bool:
        return name == self.cut or (name in self._batch and value.ndim >= 1 and value.shape[0] == 1)

    def _build_head(self, values: dict[str, np.ndarray]) -> None:
        """The head model by `onnx.utils.Extractor`, its inputs typed from the first image's values (the
        batch dimension symbolic where a tensor is repeated along it). No value_info is kept: the full
        graph's may pin the batch to 1; ONNX Runtime infers the head's shapes itself."""
        import onnxruntime as ort

        onnx = _onnx()
        inputs = {}
        for name in [self.cut, *self.sides]:
            value = values[name]
            dims: list[Any] = list(value.shape)
            if self._repeats(name, value):
                dims[0] = "batch"
            inputs[name] = onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), dims
            )
        extractor = onnx.utils.Extractor(self._model)
        extractor.value_infos.update(inputs)
        head = extractor.extract_model([self.cut, *self.sides], [self._output])
        del head.graph.value_info[:]
        self.head_model = head
        self._head_session = ort.InferenceSession(head.SerializeToString(), self._options, providers=self._providers)

    # -- running ----------------------------------------------------------------------------------------

    def full(self, image: np.ndarray) -> np.ndarray:
        """The uncut model's logits."""
        return self._full.run(None, {self._graph_inputs[0]: image})[0]

    def body(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The image's values of the cut tensor and every side input of the head."""
        feed = {self._graph_inputs[0]: image}
        values = {**feed, **dict(zip(self._body_outputs, self._body.run(self._body_outputs, feed)))}
        if self._head_session is None:
            self._build_head(values)
        return values

    def head(self, cut_batch: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for a batch of cut-tensor values, with one image's side values (`body`) repeated along it
        (or, with `sides_per_row`, computed from the image repeated along it)."""
        feeds = {self.cut: cut_batch}
        rows = len(cut_batch)
        if self.sides_per_row and rows > 1:
            image = np.repeat(values[self._graph_inputs[0]], rows, axis=0)
            batched = dict(zip(self._body_outputs, self._body.run(self._body_outputs, {self._graph_inputs[0]: image})))
            batched[self._graph_inputs[0]] = image
            for name in self.sides:  # every side from the batched pass: shapes and indices alike
                feeds[name] = batched.get(name, values[name])
        else:
            for name in self.sides:
                value = values[name]
                feeds[name] = np.repeat(value, rows, axis=0) if self._repeats(name, value) else value
        return self._head_session.run([self._output], feeds)[0]
