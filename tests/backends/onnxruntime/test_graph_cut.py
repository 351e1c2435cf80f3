"""One ONNX graph cut at one tensor and run by ONNX Runtime on both sides, on hand-made graphs: the head
rebuilt from the cut tensor (and a skip connection it reads beside it) gives the full model's logits for
every row of a batch; in a QDQ graph the cut is at the 8-bit codes, with their quantization; and the cuts
that cannot be made say why in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.onnxruntime.graph_cut import CutUnavailable, GraphCut

# builds ONNX Runtime sessions (the project's rule for runtime tests): out of `make fast`
pytestmark = pytest.mark.integration

RNG = np.random.default_rng(0)
W1, W2, W3 = (RNG.standard_normal(shape).astype(np.float32) for shape in ((2, 1, 3, 3), (2, 2, 3, 3), (2, 2, 1, 1)))
IMAGE = RNG.standard_normal((1, 1, 4, 4)).astype(np.float32)


def _save(nodes: list, initializers: dict[str, np.ndarray], path: Path, outputs: tuple[str, ...] = ("logits",)) -> Path:
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializer=[numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def _float_graph(path: Path) -> Path:
    """x -> conv1 -> a -> relu -> b -> conv2 -> c; c + a (a skip) -> d -> conv3 -> logits; a -> unused."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "a"], ["d"], name="skip"),
        helper.make_node("Conv", ["d", "w3"], ["logits"], name="conv3"),
        helper.make_node("Identity", ["a"], ["unused"], name="side_output"),
    ]
    return _save(nodes, {"w1": W1, "w2": W2, "w3": W3}, path, ("logits", "unused"))


def _qdq_graph(path: Path, extra_reader: bool = False) -> Path:
    """x -> conv1 -> a -> relu -> b -> QuantizeLinear -> bq -> DequantizeLinear -> conv2 -> logits."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("QuantizeLinear", ["b", "scale", "zero"], ["bq"], name="quantize"),
        helper.make_node("DequantizeLinear", ["bq", "scale", "zero"], ["bd"], name="dequantize"),
        helper.make_node("Conv", ["bd", "w2"], ["logits"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    outputs: tuple[str, ...] = ("logits",)
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", ["b"], ["probe"], name="probe"))
        outputs = ("logits", "probe")
    initializers = {"w1": W1, "w2": W2, "scale": np.array(0.05, np.float32), "zero": np.array(0, np.uint8)}
    return _save(nodes, initializers, path, outputs)


def test_the_head_from_the_cut_tensor_and_its_skip_gives_the_full_logits_for_every_row(tmp_path: Path):
    cut = GraphCut(_float_graph(tmp_path / "float.onnx"), "b")
    assert (cut.cut, cut.quant, cut.sides, cut.head_nodes) == ("b", None, ["a"], [2, 3, 4])  # conv2, skip, conv3
    values = cut.body(IMAGE)
    assert values["b"].shape == (1, 2, 4, 4) and (values["b"] >= 0).all()
    full = cut.full(IMAGE)
    rows = cut.head(np.repeat(values["b"], 3, axis=0), values)
    assert rows.shape == (3, 2, 4, 4)
    np.testing.assert_allclose(rows, np.repeat(full, 3, axis=0), rtol=1e-5, atol=1e-6)
    shifted = values["b"].copy()
    shifted[0, 1] += 1.0  # one channel moved: the logits move
    assert not np.allclose(cut.head(shifted, values), full)


def test_in_a_qdq_graph_the_cut_is_at_the_codes_with_their_quantization(tmp_path: Path):
    cut = GraphCut(_qdq_graph(tmp_path / "qdq.onnx"), "b")
    assert cut.cut == "bq" and cut.sides == []
    assert (
        cut.quant is not None and cut.quant["dtype"] == np.uint8 and (cut.quant["low"], cut.quant["high"]) == (0, 255)
    )
    assert cut.quant["scale"].tolist() == [pytest.approx(0.05)] and cut.quant["zero_point"].tolist() == [0]
    codes = cut.body(IMAGE)["bq"]
    assert codes.dtype == np.uint8
    np.testing.assert_allclose(cut.head(codes, {}), cut.full(IMAGE), rtol=1e-5, atol=1e-6)


def test_cuts_that_cannot_be_made_say_why(tmp_path: Path):
    path = _float_graph(tmp_path / "float.onnx")
    with pytest.raises(CutUnavailable, match=r"^tensor 'nope' is not in float\.onnx$"):
        GraphCut(path, "nope")
    with pytest.raises(CutUnavailable, match=r"^the logits 'logits' do not depend on 'unused'$"):
        GraphCut(path, "unused")
    shared = _qdq_graph(tmp_path / "shared.onnx", extra_reader=True)
    with pytest.raises(CutUnavailable, match=r"'b' is read by Sigmoid 'probe' besides its QuantizeLinear"):
        GraphCut(shared, "b")
