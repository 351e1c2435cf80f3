"""Finite-difference Grad-CAM on OpenVINO's own compiled arithmetic: the IR cut at the feature tensor
with OpenVINO's model API, shifted there, and the head compiled and run past the cut.

The IR is read twice. The *head* is every node whose value depends on the feature tensor A; the
*body* is a model from the input to A and to every *side* tensor (a tensor that does not depend on A
but that a head node reads: a U-Net's skip connections, an ENet decoder's max-pool indices and the
shape arithmetic of its max-unpool). In the head, A and each side tensor are replaced by new
`Parameter`s, so OpenVINO compiles and runs the layers after the cut exactly as they are in the IR;
everything that does not depend on A runs once per image, in the body.

The head runs the shifted copies of A as one batch when it can: when every side tensor is
batch-first (its shape at batch 2, by OpenVINO's shape inference of the body, is its batch-1 shape
with 2 in front) it is repeated along the batch, and the head is reshaped to the batch. A side that
is not (a max-unpool's flat indices, or the batch size itself as a scalar: reshaping that to a batch
made OpenVINO's shape inference fail at the unpool's `Range`), a head that cannot be reshaped, or
identical rows that disagree (a side whose values encode the batch position) make the head run one
row at a time instead, compiled at the IR's own batch-1 shapes: the very arithmetic of the model.

Where A is quantized (an NNCF IR: A's reader is a FakeQuantize with `levels` levels), the cut is in
front of that FakeQuantize and A is fed on its grid: channel k's code moves by `steps` whole
quantization steps (clipped to the code range), so every head pass sees values the deployed model
could produce and the FakeQuantize and the int8 kernels after it run as compiled. A float A is shifted
by the float step every float cut uses (bench/gradcam/split.py). The unshifted head must
reproduce the compiled full model's logits (within `HEAD_RTOL`; in an int8 IR within `INT8_HEAD_RTOL`, the
difference reported), or the split raises; where the full model does not even reproduce itself (two
compilations, two answers) the note says that instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import GradcamMaps, GradcamRequest
from bench.gradcam.cut_splitter import CodeGrid, FeatureSplitter
from bench.gradcam.explain import SIMULATION_TOLERANCE
from bench.gradcam.records import FeatureSplit
from bench.gradcam.split import FLOAT_STEP, SplitUnavailable

# |head - full| allowed, relative to max |logits|: the head is compiled on its own, so the plugin may fuse
# the layers at the cut differently from the full model (a FakeQuantize folded into the convolution
# before it there, run standalone here); float rounding, not other arithmetic.
HEAD_RTOL = 1e-4
# In an int8 IR the plugin's fusions also decide where a sum is requantized: LR-ASPP's compiled model adds
# its two classifiers inside one int8 convolution (the other's output as its sum, unrounded), a head
# compiled on its own fuses the sum into the other convolution, and the final FakeQuantize then differs by
# one code here and there (1% of max |logit|). The head stays the model's own quantizers and kernels, so
# it is judged like every program Grad-CAM runs beside the deployed one: within the simulation tolerance,
# with the difference reported as `gradcam_vs_deployed_max_abs`.
INT8_HEAD_RTOL = SIMULATION_TOLERANCE
# why a head runs one row at a time (the split's note says so)
ROW_BY_ROW = "its side inputs are not batch-first, or encode the batch"
# bf16 keeps 8 bits of mantissa: a head pass differs from the full model by ~1e-3 of the logits' range
# (measured: 0.0625 on logits of 40) just from how the plugin fuses the layers at the cut, the size of
# the differences finite differences take. The fp32 row's maps are OpenVINO's float arithmetic.
BF16_NOTE = (
    "finite differences not possible in bf16: its 8-bit mantissa moves the head's logits as much as the "
    "shifts do (see the openvino fp32 row for OpenVINO's float maps)"
)


def _find_output(model: Any, tensor: str) -> Any:
    for op in model.get_ordered_ops():
        for port in op.outputs():
            if tensor in port.get_names():
                return port
    raise SplitUnavailable(f"the OpenVINO model has no tensor named '{tensor}'")


def _key(port: Any) -> str:
    """A port's identity that holds across two reads of one IR: its node's friendly name and index."""
    return f"{port.get_node().get_friendly_name()}:{port.get_index()}"


def _descendants(ports: list[Any]) -> set[Any]:
    """Every node whose value depends on one of `ports` (their own nodes excluded)."""
    seen: set[Any] = set()
    stack = [target.get_node() for port in ports for target in port.get_target_inputs()]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(target.get_node() for out in node.outputs() for target in out.get_target_inputs())
    return seen


def _sides(model: Any, cut: Any, head: set[Any]) -> list[Any]:
    """The outputs, in graph order, that a head node reads and that do not depend on the cut. Whatever
    depends on no input at all (an int8 weight and its FakeQuantize) stays in the head, where the plugin
    folds it into the layer as in the full model."""
    variable = _descendants([p.output(0) for p in model.get_parameters()]) | set(model.get_parameters())
    cut_key = _key(cut)
    found: dict[str, Any] = {}
    for node in model.get_ordered_ops():
        if node not in head:
            continue
        for target in node.inputs():
            source = target.get_source_output()
            producer = source.get_node()
            if producer in head or producer not in variable or _key(source) == cut_key:
                continue
            found.setdefault(_key(source), source)
    return list(found.values())


def _dims(shape: Any) -> list[int] | None:
    """A static partial shape as a list of ints; None when any dimension is dynamic."""
    if shape.rank.is_dynamic or not shape.is_static:
        return None
    return [int(d.get_length()) for d in shape]


def _batch_first(body: Any) -> bool:
    """Are the body's side outputs (all but the first) batch-first, so that repeating a batch-1 value along
    the head's batch is what the model itself would compute at that batch? Asked of OpenVINO's shape
    inference of the body reshaped to batch 2: each side's shape must be its batch-1 shape with 2 in front."""
    from backends.openvino.runtime import with_batch

    if len(body.outputs) == 1:
        return True
    try:
        twice = with_batch(body, 2)
    except RuntimeError:  # the body cannot be reshaped: nor, then, can a head that reads it
        return False
    for one, two in zip(body.outputs[1:], twice.outputs[1:]):
        single, double = _dims(one.get_partial_shape()), _dims(two.get_partial_shape())
        if not single or single[0] != 1 or double != [2, *single[1:]]:
            return False
    return True


def _quantizer(port: Any) -> dict[str, Any] | None:
    """The FakeQuantize that reads A (its only reader), as arrays broadcastable to (1, K, 1, 1); None for a float A."""
    readers = [target.get_node() for target in port.get_target_inputs()]
    if len(readers) != 1 or readers[0].get_type_name() != "FakeQuantize":
        return None
    fq = readers[0]
    bounds = []
    for i in range(1, 5):
        const = fq.input(i).get_source_output().get_node()
        if const.get_type_name() != "Constant":
            return None
        bounds.append(np.asarray(const.get_data(), dtype=np.float64))
    low, high, out_low, out_high = bounds
    levels = int(fq.get_levels())
    return {"low": low, "high": high, "out_low": out_low, "out_high": out_high, "levels": levels, "node": fq}


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray:
    """A FakeQuantize bound (per tensor, or per channel as (1, K, 1, 1)) as one value per channel."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (channels,))


class OpenVinoFeatureSplitter(FeatureSplitter):
    """The IR at `xml_path` cut at tensor `tensor_name`; `split(image)` cuts one image (the shared
    `FeatureSplitter`, run on models OpenVINO compiles)."""

    WHAT = "the OpenVINO cut"
    HEAD_RTOL = HEAD_RTOL

    def __init__(
        self,
        xml_path: Path,
        tensor_name: str,
        threads: int = 1,
        steps: int = 4,
        precision: str = "f32",
        float_step: float = FLOAT_STEP,
    ) -> None:
        import openvino as ov

        from backends.openvino.runtime import compile_model

        super().__init__(xml_path, tensor_name, steps, float_step)
        self.threads, self.precision = threads, precision
        core = ov.Core()
        full = core.read_model(str(xml_path))
        self.full = compile_model(full, threads, precision)
        self.int8 = any(op.get_type_name() == "FakeQuantize" for op in full.get_ordered_ops())
        self._full_model = full
        cut = _find_output(full, tensor_name)
        self.quant = _quantizer(cut)
        cut_key = _key(cut)
        sides = _sides(full, cut, _descendants([cut]))
        self.side_names = [_key(s) for s in sides]
        # An int8 body returns A after its FakeQuantize: the plugin fuses that into the layer before it, as in
        # the full model, so the codes are the deployed ones (rounding A in numpy differed by one code here
        # and there, and the logits by 1e-3 of their range).
        first = self.quant["node"].output(0) if self.quant else cut
        self.body_model = ov.Model([first, *sides], [full.inputs[0].get_node()], "segbench_body")
        self.body = compile_model(self.body_model.clone(), threads, precision)

        head_src = core.read_model(str(xml_path))  # a second copy: the head rewires its nodes
        head_nodes = _descendants([_find_output(head_src, tensor_name)])
        ports = {_key(port): port for node in head_src.get_ordered_ops() for port in node.outputs()}
        params: list[Any] = []
        for key in [cut_key, *self.side_names]:
            port = ports[key]
            name = f"segbench_cut_{len(params)}"
            param = ov.opset13.parameter(port.get_partial_shape(), port.get_element_type(), name=name)
            for target in list(port.get_target_inputs()):
                if target.get_node() in head_nodes:  # a side tensor's other readers stay in the body
                    target.replace_source_output(param.output(0))
            params.append(param)
        results = head_src.get_results()
        if not results or results[0] not in head_nodes:
            raise SplitUnavailable(f"the model's output does not depend on '{tensor_name}'")
        self.head_model = ov.Model([r for r in results if r in head_nodes], params, "segbench_head")
        self._heads: dict[int, Any] = {}
        # None until decided: run the head on a batch of rows, or one row at a time (see the module's docstring)
        self.batched: bool | None = None

    @property
    def sides(self) -> list[str]:
        return self.side_names

    def _head(self, rows: int) -> Any:
        """The head compiled for `rows` rows; at 1, at the IR's own shapes (nothing reshaped)."""
        if rows not in self._heads:
            from backends.openvino.runtime import compile_model, with_batch

            model = self.head_model.clone() if rows == 1 else with_batch(self.head_model, rows)
            self._heads[rows] = compile_model(model, self.threads, self.precision)
        return self._heads[rows]

    def _batched(self) -> bool:
        if self.batched is None:
            self.batched = _batch_first(self.body_model)
        return self.batched

    def _run_rows(self, batch: np.ndarray, sides: list[np.ndarray]) -> np.ndarray:
        """The head on each row alone, with the image's own side values: nothing is reshaped."""
        head = self._head(1)
        return np.concatenate([np.array(head([batch[r : r + 1], *sides])[0], copy=True) for r in range(len(batch))])

    def _run_head(self, batch: np.ndarray, sides: list[np.ndarray]) -> np.ndarray:
        """The head on a batch, as one call where the sides repeat along it, else row by row."""
        batch = np.ascontiguousarray(batch, np.float32)
        rows = len(batch)
        if rows == 1 or not self._batched():
            return self._run_rows(batch, sides)
        try:
            head = self._head(rows)
        except RuntimeError:  # OpenVINO's shape inference refused the batch: the head runs row by row
            self.batched = False
            return self._run_rows(batch, sides)
        return np.asarray(head([batch, *[np.repeat(s, rows, axis=0) for s in sides]])[0])

    def _run_body(self, image: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        out = self.body(image)
        values = [np.asarray(out[i]) for i in range(len(out))]
        return values[0], values[1:]

    def full_logits(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.full(image)[0])

    def _grid(self, cut: np.ndarray) -> CodeGrid:
        """A in front of its FakeQuantize, fed on the quantizer's input grid at the deployed codes (read back
        from the body's FakeQuantize output)."""
        q = self.quant
        assert q is not None
        channels = cut.shape[0]
        low, high = _per_channel(q["low"], channels), _per_channel(q["high"], channels)
        out_low, out_high = _per_channel(q["out_low"], channels), _per_channel(q["out_high"], channels)
        top = q["levels"] - 1
        out_span = np.where(out_high != out_low, out_high - out_low, 1.0)
        codes = np.clip(np.round((cut - out_low[:, None, None]) / out_span[:, None, None] * top), 0, top)
        span3 = ((high - low) / top)[:, None, None]
        out_step = (out_high - out_low) / top
        return CodeGrid(
            codes=codes,
            low=0,
            high=top,
            step=out_step,
            features=(out_low[:, None, None] + codes * out_step[:, None, None]).astype(np.float32),
            feed=lambda moved: (low[:, None, None] + moved * span3).astype(np.float32),
            label=f"{q['levels']}-level FakeQuantize grid",
        )

    def _rows_fallback(self) -> bool:
        """Run the head one row at a time, at the IR's own shapes: the model's own arithmetic."""
        if self.batched is False:
            return False
        self.batched = False
        return True

    def _row_note(self) -> str | None:
        return f"head run one row at a time ({ROW_BY_ROW})" if self.batched is False else None

    def _head_rtol(self) -> float:
        return INT8_HEAD_RTOL if self.int8 else HEAD_RTOL

    def _check(self, image: np.ndarray, split: FeatureSplit) -> float:
        try:
            scale = super()._check(image, split)
        except SplitUnavailable:
            self._check_reproducible(image)  # a model that differs from itself says so instead
            raise
        split.meta["logits_scale"] = scale  # the deployed logits' range, without another full pass
        return scale

    def _check_reproducible(self, image: np.ndarray) -> None:
        """Raise when a second compilation of the full IR gives other logits for the same image: no head
        can then be checked against the model. (OpenVINO 2026.4's int8 SegFormer: a depthwise convolution
        with int8 weights reads uninitialized memory, its outputs hold 1e29s and NaNs, and two compilations
        of the same IR gave logits 20% of their range apart.)"""
        from backends.openvino.runtime import compile_model

        first = self.full_logits(image)
        again = np.asarray(compile_model(self._full_model.clone(), self.threads, self.precision)(image)[0])
        diff = float(np.max(np.abs(again.astype(np.float64) - first)))
        scale = float(np.max(np.abs(first)))
        if not diff <= self.HEAD_RTOL * max(1.0, scale):
            raise SplitUnavailable(
                f"OpenVINO's compiled {self.path.name} does not reproduce itself: two compilations give logits "
                f"up to {diff:.3g} apart (max |logit| {scale:.3g}), so no head can be checked against it"
            )


def openvino_gradcam(
    xml_path: Path,
    request: GradcamRequest,
    layer_tensors: dict[str, str] | None,
    precision: str = "f32",
    chunk: int = 32,
) -> list[GradcamMaps]:
    """Finite-difference Grad-CAM of an OpenVINO IR, every requested layer, at the request's step and
    at each of its floor steps (in that order). A layer with no tensor in the IR, or whose cut does not
    reproduce the model, is left out with its reason in the notes."""
    from bench.gradcam.split import split_gradcam

    if precision == "bf16":
        return [GradcamMaps.without_maps("finite-difference", BF16_NOTE)]
    mapping = dict(layer_tensors or {})
    seen = {"diff": 0.0, "scale": 0.0}  # the heads' largest |logit| difference from the compiled full model

    def splitter_for(layer: str) -> Any:
        tensor = mapping.get(layer, layer)
        splitter = OpenVinoFeatureSplitter(xml_path, tensor, request.threads, request.steps, precision)

        def split(image: np.ndarray, steps: int) -> FeatureSplit:
            found = splitter.split(image, steps)
            seen["diff"] = max(seen["diff"], float(found.meta["max_abs_vs_model"]))  # type: ignore[arg-type]
            seen["scale"] = max(seen["scale"], float(found.meta["logits_scale"]))  # type: ignore[arg-type]
            return found

        return split

    found = split_gradcam(
        request.images,
        request.layers,
        request.classes,
        splitter_for,
        prefix="OpenVINO head cut at the feature tensor",
        chunk=chunk,
        steps=(request.steps, *request.floor_steps),
        cut="openvino",
    )
    return [replace(maps, vs_deployed_max_abs=seen["diff"], vs_deployed_scale=seen["scale"] or None) for maps in found]
