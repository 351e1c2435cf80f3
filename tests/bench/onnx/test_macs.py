"""MACs and traffic of small graphs against hand arithmetic: a graph written node by node (fast), and the
same network built in torch and exported (integration), which must count the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.onnx.macs import GraphCount, count_file, count_model, export_for_count

# The network, on one 3 x 16 x 16 image (MACs = output elements x weight elements per output channel):
CONV = 8 * 16 * 16 * (3 * 3 * 3)  # Conv 3->8, k3, pad 1: 2048 outputs x 27 = 55,296
GROUPED = 8 * 16 * 16 * ((8 // 4) * 3 * 3)  # Conv 8->8, k3, pad 1, 4 groups: 2048 x 18 = 36,864
TRANSPOSED = 8 * 16 * 16 * ((4 // 1) * 2 * 2)  # ConvTranspose 8->4, k2, stride 2: 2048 inputs x 16 = 32,768
DILATED = 4 * 32 * 32 * (4 * 3 * 3)  # Conv 4->4, k3, dilation 2, pad 2 on 32 x 32: 4096 x 36 = 147,456
LINEAR = 1 * 10 * 4  # Gemm after global pooling: M 1, N 10, K 4 = 40
TOTAL = CONV + GROUPED + TRANSPOSED + DILATED + LINEAR  # 272,424
# weights and biases the counted nodes read, and the activations they read and write (elements)
WEIGHTS = (8 * 3 * 9 + 8) + (8 * 2 * 9 + 8) + (8 * 4 * 4 + 4) + (4 * 4 * 9 + 4) + (10 * 4 + 10)  # 706
ACTIVATIONS = (768 + 2048) + (2048 + 2048) + (2048 + 4096) + (4096 + 4096) + (4 + 10)  # 21,262


def test_the_hand_arithmetic_adds_up() -> None:
    assert (CONV, GROUPED, TRANSPOSED, DILATED, LINEAR) == (55_296, 36_864, 32_768, 147_456, 40)
    assert (TOTAL, WEIGHTS, ACTIVATIONS) == (272_424, 706, 21_262)


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def hand_graph(batch: int | str = "N") -> onnx.ModelProto:
    """The network node by node: its image batch symbolic ("N") or fixed."""
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4),
        helper.make_node("ConvTranspose", ["c2", "w3", "b3"], ["c3"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["c3", "w4", "b4"], ["c4"], kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2]),
        helper.make_node("Relu", ["c4"], ["r4"]),
        helper.make_node("GlobalAveragePool", ["r4"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w5", "b5"], ["logits"], transB=1),
    ]
    initializers = [
        _weight("w1", 8, 3, 3, 3),
        _weight("b1", 8),
        _weight("w2", 8, 2, 3, 3),
        _weight("b2", 8),
        _weight("w3", 8, 4, 2, 2),
        _weight("b3", 4),
        _weight("w4", 4, 4, 3, 3),
        _weight("b4", 4),
        _weight("w5", 10, 4),
        _weight("b5", 10),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("batch", ["N", 1, 2])
def test_a_hand_written_graph_counts_as_the_hand_arithmetic_per_image(batch: int | str) -> None:
    """A symbolic batch is taken as 1; a graph fixed at batch 2 counts per image all the same."""
    count = count_model(hand_graph(batch))
    assert count.macs == TOTAL
    assert count.weight_elements == WEIGHTS and count.activation_elements == ACTIVATIONS
    assert (count.nodes, count.counted_nodes, count.unknown_shapes) == (9, 5, 0)
    assert count.uncounted == (("Relu", 2), ("Flatten", 1), ("GlobalAveragePool", 1))
    assert count.uncounted_nodes_pct == pytest.approx(100 * 4 / 9)
    assert count.uncounted_text() == "Relu 22%, Flatten 11%, GlobalAveragePool 11%"


def test_bytes_per_image_share_the_weights_across_the_batch() -> None:
    count = count_model(hand_graph())
    assert count.bytes_per_image(1, 4) == (WEIGHTS + ACTIVATIONS) * 4
    assert count.bytes_per_image(2, 1) == WEIGHTS / 2 + ACTIVATIONS


def test_matmul_broadcasts_and_a_transposed_gemm_reads_k_from_its_rows() -> None:
    """MatMul [1, 4, 6, 5] x a [5, 7] weight: 4 * 6 * 7 outputs x K 5; Gemm with transA: A is [K, M]."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),  # a weight computed in the graph stays a weight
        helper.make_node("Gemm", ["a", "wt"], ["z"], transA=1, transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "matmul",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 5]),
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [5, 3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
        ],
        [_weight("w", 5, 7)],
    )
    count = count_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert count.macs == 4 * 6 * 7 * 5 + 3 * 5 * 7
    assert count.weight_elements == 35 + 35  # w for the MatMul, its transpose for the Gemm
    assert count.uncounted == (("Transpose", 1),)


def test_a_node_of_unknown_shape_is_left_out_and_said() -> None:
    """A Conv whose weight is a graph input of unknown shape cannot be counted: named, not guessed."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "unknown",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, None),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    count = count_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert (count.macs, count.counted_nodes, count.unknown_shapes) == (0, 0, 1)
    assert "1 Conv/MatMul-type node(s) of unknown shape" in count.uncounted_text()


def test_a_count_survives_its_json() -> None:
    count = count_model(hand_graph(), "hand")
    assert GraphCount.from_json(count.to_json()) == count


@pytest.mark.integration
def test_the_network_built_in_torch_and_exported_counts_the_same(tmp_path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.ConvTranspose2d(8, 4, 2, stride=2),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    count = count_file(export_for_count(model, (3, 16, 16), tmp_path / "tiny.onnx"))
    assert count.macs == TOTAL == 272_424
    assert count.weight_elements == WEIGHTS
    assert count.counted_nodes == 5 and count.unknown_shapes == 0
    assert dict(count.uncounted)["Relu"] == 2
