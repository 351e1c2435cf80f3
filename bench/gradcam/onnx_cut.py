"""Cut an ONNX graph at the Grad-CAM feature tensor, so finite differences run ONNX Runtime's own head.

The feature layer's output tensor A is found by name (`bench.onnx.export.layer_tensors`, stored with the
artifact because quantization rewrites nodes but keeps tensor names). The cut:

- QDQ int8 graph: A feeds a QuantizeLinear whose output are the 8-bit codes the rest of the network
  reads; the cut is at those codes. The shifted batch moves channel k's codes by `steps` whole
  quantization steps (clipped to the code range), so every head pass sees codes the deployed graph
  could produce, and ORT fuses the head's DQ -> Conv -> Q into the same int8 kernels as in the full graph.
- float graph (or an A nothing quantizes): the cut is at A itself, shifted by a small float step
  (`FLOAT_STEP` x the channel's standard deviation); the finite-difference error is then O(step).

The body is the original graph with extra outputs (the cut tensor and the head's side inputs, e.g. skip
connections); the head is every node downstream of the cut that leads to the logits, plus the constant
work it needs (weight DequantizeLinear, Constant, shape arithmetic), with the side tensors as inputs,
repeated along the batch, extracted with `onnx.utils.Extractor`. Both run in InferenceSessions with
the timed session's threads and graph optimizations. At split time the unshifted head must reproduce
the full model's logits (exactly for a cut at codes), or the split raises instead of producing maps of
some other arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import GradcamMaps, GradcamRequest
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import SplitUnavailable
from bench.onnx.graph import GraphIndex

FLOAT_STEP = 1e-2  # float cut: shift = FLOAT_STEP * std of the channel (floored, see `_float_steps`)
FLOAT_RTOL = 1e-5  # float cut: allowed |head - full| relative to max |logits|


def _onnx() -> Any:
    import onnx
    import onnx.utils

    return onnx


class OnnxFeatureSplitter:
    """Body and head sessions for one feature tensor of one ONNX graph; `split(image)` cuts one image.

    Built once per (graph, layer) and reused for every image: session creation costs more than a run."""

    def __init__(
        self,
        model_path: Path,
        tensor_name: str,
        threads: int = 1,
        steps: int = 4,
        device: str = "cpu",
        float_step: float = FLOAT_STEP,
    ) -> None:
        import onnxruntime as ort

        from bench.onnx.session import providers_for, session_options

        onnx = _onnx()
        if int(steps) != steps or steps < 1:
            raise SplitUnavailable(
                f"the finite-difference step must be a positive whole number of quantization steps, got {steps}"
            )
        self.path, self.tensor, self.steps, self.float_step = Path(model_path), tensor_name, int(steps), float_step
        model = onnx.load(str(self.path))
        graph = model.graph
        self._index = GraphIndex(model)
        self._position = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
        self._graph_inputs = self._index.inputs
        if tensor_name not in self._position and tensor_name not in self._graph_inputs:
            raise SplitUnavailable(f"tensor '{tensor_name}' is not in {self.path.name}")
        self.cut, self.quant = self._find_cut(tensor_name)
        head, sides = self._head(model)
        self.head_nodes, self.sides = head, sides
        self._body_outputs = [self.cut] + [s for s in sides if s not in self._graph_inputs]
        body = onnx.ModelProto()
        body.CopyFrom(model)
        known = {o.name for o in body.graph.output}
        body.graph.output.extend(onnx.ValueInfoProto(name=n) for n in self._body_outputs if n not in known)
        options = session_options(threads)
        providers = providers_for(device)
        self._full = ort.InferenceSession(str(self.path), options, providers=providers)
        self._body = ort.InferenceSession(body.SerializeToString(), options, providers=providers)
        self._output = graph.output[0].name
        self._model, self._options, self._providers = model, options, providers
        self._head_session: Any = None
        self.head_model: Any = None  # the head ModelProto, built on the first split (needs the side shapes)

    # -- graph surgery ----------------------------------------------------------------------------------

    def _constant(self, name: str) -> np.ndarray:
        value = self._index.constant(name)
        if value is None:
            raise SplitUnavailable(f"quantization parameter '{name}' of '{self.tensor}' is not a constant")
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
            raise SplitUnavailable(
                f"'{tensor}' is read by {other.op_type} '{other.name}' besides its "
                f"QuantizeLinear, so no single code tensor carries it"
            )
        q = quantizers[0]
        scale = self._constant(q.input[1]).astype(np.float32)
        zero = self._constant(q.input[2]) if len(q.input) > 2 and q.input[2] else np.zeros(scale.shape, np.uint8)
        axis = self._index.attribute(q, "axis", 1)
        if scale.ndim > 1 or (scale.ndim == 1 and scale.size > 1 and axis != 1):
            raise SplitUnavailable(f"'{tensor}' is quantized along axis {axis}, not per channel or per tensor")
        info = np.iinfo(zero.dtype)
        return q.output[0], {
            "scale": scale.reshape(-1),
            "zero_point": zero.reshape(-1).astype(np.int64),
            "dtype": zero.dtype,
            "low": int(info.min),
            "high": int(info.max),
        }

    def _types(self, model: Any) -> dict[str, Any]:
        """Inferred value info by name (graph inputs, value_info, outputs); empty when inference fails."""
        onnx = _onnx()
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:
            inferred = model
        g = inferred.graph
        return {v.name: v for v in [*g.input, *g.value_info, *g.output]}

    def _head(self, model: Any) -> tuple[list[int], list[str]]:
        """Node indices of the head (graph order) and its side inputs (computed outside it)."""
        graph = model.graph
        downstream: set[int] = set()
        frontier = [self.cut]
        while frontier:
            for i in {self._position[node.output[0]] for node in self._index.readers(frontier.pop())}:
                if i not in downstream:
                    downstream.add(i)
                    frontier.extend(o for o in graph.node[i].output if o)
        needed: set[int] = set()
        frontier = [graph.output[0].name]
        while frontier:
            index = self._position.get(frontier.pop())
            if index is not None and index not in needed:
                needed.add(index)
                frontier.extend(n for n in graph.node[index].input if n)
        head = downstream & needed
        if not head:
            raise SplitUnavailable(f"the logits '{graph.output[0].name}' do not depend on '{self.tensor}'")
        batch = self._batch_dependent(graph)
        types = self._types(model)
        batch_dim = self._batch_dim(types)
        changed = True
        while changed:  # pull in constant work and shape arithmetic the head's nodes read
            changed = False
            for i in sorted(head):
                for name in graph.node[i].input:
                    index = self._position.get(name)
                    if (
                        not name
                        or name == self.cut
                        or name in self._index.initializers
                        or index is None
                        or index in head
                    ):
                        continue
                    node = graph.node[index]
                    if node.op_type in ("Constant", "DequantizeLinear") or (
                        name in batch and not self._is_activation(types.get(name), batch_dim)
                    ):
                        head.add(index)
                        changed = True
        sides: list[str] = []
        produced = {o for i in head for o in graph.node[i].output}
        for i in sorted(head):
            for name in graph.node[i].input:
                if (
                    name
                    and name != self.cut
                    and name not in self._index.initializers
                    and name not in produced
                    and name not in sides
                ):
                    sides.append(name)
        self._batch = batch
        return sorted(head), sides

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
            elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
            inputs[name] = onnx.helper.make_tensor_value_info(name, elem, dims)
        extractor = onnx.utils.Extractor(self._model)
        extractor.value_infos.update(inputs)
        head = extractor.extract_model([self.cut, *self.sides], [self._output])
        del head.graph.value_info[:]
        self.head_model = head
        self._head_session = ort.InferenceSession(head.SerializeToString(), self._options, providers=self._providers)

    def _repeats(self, name: str, value: np.ndarray) -> bool:
        return name == self.cut or (name in self._batch and value.ndim >= 1 and value.shape[0] == 1)

    # -- one image ----------------------------------------------------------------------------------------

    def full_logits(self, image: np.ndarray) -> np.ndarray:
        return self._full.run(None, {self._graph_inputs[0]: image})[0]

    def split(self, image: np.ndarray) -> FeatureSplit:
        """Cut the forward pass of one (1, C, H, W) image; checks the unshifted head against the full model."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 4 or image.shape[0] != 1:
            raise SplitUnavailable(f"onnx_feature_split takes one image (1, C, H, W), got shape {image.shape}")
        feed = {self._graph_inputs[0]: image}
        outputs = self._body.run(self._body_outputs, feed)
        values = {**feed, **dict(zip(self._body_outputs, outputs))}
        if self._head_session is None:
            self._build_head(values)
        cut = values[self.cut]
        if cut.ndim != 4:
            raise SplitUnavailable(f"'{self.tensor}' is not a (1, K, h, w) feature map (shape {cut.shape})")
        sides = {name: values[name] for name in self.sides}
        head_run = self._head_session.run

        def run_head(batch: np.ndarray) -> np.ndarray:
            feeds = {self.cut: batch}
            for name, value in sides.items():
                feeds[name] = np.repeat(value, len(batch), axis=0) if self._repeats(name, value) else value
            return head_run([self._output], feeds)[0]

        if self.quant is not None:
            split = self._codes_split(cut[0], run_head)
        else:
            split = self._float_split(cut[0], run_head)
        self._check(image, split)
        return split

    def _codes_split(self, codes: np.ndarray, run_head: Any) -> FeatureSplit:
        q = self.quant
        channels = codes.shape[0]
        scale = np.broadcast_to(q["scale"], (channels,)).astype(np.float32)
        zero = np.broadcast_to(q["zero_point"], (channels,))
        features = (codes.astype(np.int64) - zero[:, None, None]).astype(np.float32) * scale[:, None, None]
        moved = np.clip(codes.astype(np.int64) + self.steps, q["low"], q["high"]).astype(q["dtype"])
        clipped = float(np.mean(moved.astype(np.int64) - codes.astype(np.int64) != self.steps))

        def head_shifted(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, dtype=np.int64)
            batch = np.repeat(codes[None], len(rows), axis=0)
            for r, k in enumerate(rows):
                if k >= 0:
                    batch[r, k] = moved[k]
            return run_head(batch)

        kind = f"{np.dtype(q['dtype']).name} codes of {self.tensor}, shift {self.steps} steps"
        return FeatureSplit(
            features=features,
            step=self.steps * scale.astype(np.float64),
            head_shifted=head_shifted,
            meta={
                "kind": kind,
                "tensor": self.tensor,
                "cut": self.cut,
                "clipped": clipped,
                "codes": codes,
                "shifted_codes": moved,
                "sides": list(self.sides),
            },
        )

    def _float_split(self, features: np.ndarray, run_head: Any) -> FeatureSplit:
        step = _float_steps(features, self.float_step)
        shifts = step.astype(features.dtype)

        def head_shifted(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, dtype=np.int64)
            batch = np.repeat(features[None], len(rows), axis=0)
            for r, k in enumerate(rows):
                if k >= 0:
                    batch[r, k] += shifts[k]
            return run_head(batch)

        kind = f"float {self.tensor}, shift {self.float_step:g} x channel std (error O(step))"
        return FeatureSplit(
            features=features,
            step=shifts.astype(np.float64),
            head_shifted=head_shifted,
            meta={"kind": kind, "tensor": self.tensor, "cut": self.cut, "sides": list(self.sides)},
        )

    def _check(self, image: np.ndarray, split: FeatureSplit) -> None:
        """The unshifted head must be the full model: exactly for codes, to float rounding for a float cut."""
        full = self.full_logits(image)
        head = split.head_shifted(np.array([-1]))
        if head.shape != full.shape:
            raise RuntimeError(f"the head cut at '{self.tensor}' returns shape {head.shape}, the model {full.shape}")
        diff = float(np.max(np.abs(head.astype(np.float64) - full))) if full.size else 0.0
        exact = self.quant is not None
        limit = 0.0 if exact else FLOAT_RTOL * max(1.0, float(np.max(np.abs(full))))
        if diff > limit:
            raise RuntimeError(
                f"the head of {self.path.name} cut at '{self.tensor}' does not reproduce the model's "
                f"logits (max |diff| {diff:.3g} > {limit:.3g}); its maps would explain other arithmetic"
            )
        split.meta["max_abs_vs_model"] = diff


def _float_steps(features: np.ndarray, relative: float) -> np.ndarray:
    """Per-channel float shift: `relative` x the channel's std, floored at the whole tensor's std.

    The floor keeps sparse or dead channels (mostly-zero ReLU outputs) from getting a step so small that
    float32 rounding in the head swamps the difference; a tiny absolute floor keeps an all-zero tensor's
    steps non-zero."""
    wide = features.astype(np.float64)
    per_channel = wide.reshape(wide.shape[0], -1).std(axis=1)
    return relative * np.maximum(per_channel, max(float(wide.std()), 1e-12))


def onnx_feature_split(
    model_path: Path, tensor_name: str, image: np.ndarray, threads: int = 1, steps: int = 4, device: str = "cpu"
) -> FeatureSplit:
    """One image's forward pass of an ONNX graph cut at `tensor_name` (see the module docstring)."""
    return OnnxFeatureSplitter(model_path, tensor_name, threads, steps, device).split(image)


def resolve_tensor(model_path: Path, layer: str, layer_tensors: dict[str, str] | None) -> str:
    """The ONNX tensor for a layer: the stored mapping (from the export), else the mapping read from the
    file's own metadata, else the layer itself when it names a tensor of the graph."""
    from bench.onnx.export import layer_tensors as read_mapping

    mapping = layer_tensors if layer_tensors else read_mapping(model_path)
    if layer in mapping:
        return mapping[layer]
    onnx = _onnx()
    names = {o for n in onnx.load(str(model_path), load_external_data=False).graph.node for o in n.output}
    if layer in names:
        return layer
    raise SplitUnavailable(
        f"no ONNX tensor is known for layer '{layer}' (the graph has no exporter scope "
        f"metadata for it and no tensor of that name)"
    )


def onnx_gradcam(
    model_path: Path, request: GradcamRequest, layer_tensors: dict[str, str] | None, chunk: int = 32
) -> GradcamMaps:
    """Finite-difference Grad-CAM of an ONNX Runtime backend's own graph, every requested layer."""
    from bench.gradcam.split import split_gradcam

    def splitter_for(layer: str) -> Any:
        tensor = resolve_tensor(model_path, layer, layer_tensors)
        return OnnxFeatureSplitter(model_path, tensor, request.threads, request.steps, request.device).split

    return split_gradcam(
        request.images,
        request.layers,
        request.classes,
        splitter_for,
        prefix="ONNX Runtime head cut at the feature tensor",
        chunk=chunk,
    )
