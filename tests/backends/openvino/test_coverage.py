"""The OpenVINO coverage rule on runtime-graph records (no compile needed)."""

import pytest

from backends.openvino import coverage


class _Any:
    def __init__(self, value: str) -> None:
        self.value = value

    def astype(self, _type: type) -> str:
        return self.value


class _Shape:
    def __init__(self, shape: tuple) -> None:
        self.shape = shape

    def get_partial_shape(self):
        import openvino as ov

        return ov.PartialShape(list(self.shape))


class _Op:
    def __init__(self, name: str, kind: str, precision: str, absorbed: str = "", weight: tuple = ()) -> None:
        self.name, self.info = name, {"layerType": _Any(kind), "runtimePrecision": _Any(precision)}
        if absorbed:
            self.info["originalLayersNames"] = _Any(absorbed)
        self.inputs = [_Shape((1, 4, 8, 8)), _Shape(weight)] if weight else []

    def get_friendly_name(self) -> str:
        return self.name

    def get_rt_info(self) -> dict:
        return self.info

    def get_input_size(self) -> int:
        return len(self.inputs)

    def input(self, index: int) -> _Shape:
        return self.inputs[index]


class _Compiled:
    def __init__(self, ops: list[_Op]) -> None:
        self.ops = ops

    def get_runtime_model(self) -> "_Compiled":
        return self

    def get_ordered_ops(self) -> list[_Op]:
        return self.ops


def test_precision_decides_int8_float_or_boundary_and_bookkeeping_is_not_counted() -> None:
    ops = [
        _Op("in", "Input", "f32"),
        _Op("c1", "Convolution", "u8"),
        _Op("c2", "Convolution", "I8"),
        _Op("d", "Deconvolution", "f32"),
        _Op("p", "Pooling", "bf16"),
        _Op("fq", "FakeQuantize", "f32"),
        _Op("r", "Reorder", "i8"),
        _Op("s", "Reshape", "f32"),
        _Op("k", "Const", "i8"),
        _Op("out", "Output", "f32"),
    ]
    found = coverage.runtime_coverage(_Compiled(ops))
    assert found.int8 == {"Convolution": 2}
    assert found.float == {"Deconvolution": 1, "Pooling": 1}
    assert found.boundaries == {"FakeQuantize": 1}


def test_subgraph_kernels_are_named_by_what_they_absorbed() -> None:
    """Snippets kernels: typed from the IR's names or a plugin-made `Type_N` name; one that only quantizes
    (FakeQuantize) or dequantizes (the low-precision transformations' split) is a boundary."""
    types = {"attn/matmul": "MatMul", "res/add": "Add", "input/fq_output_0": "FakeQuantize"}
    ops = [
        _Op("s1", "Subgraph", "f32", "input/fq_output_0"),
        _Op("s2", "Subgraph", "i8", "Multiply_84113,Multiply_84113/DequantizationMultiply,Softmax_84116,attn/matmul"),
        _Op("s3", "Subgraph", "f32", "res/add,res/add/fq_output_0"),
        _Op("s4", "Subgraph", "i8", "fc/fq_output_0/DequantizationMultiply"),
        _Op("s5", "Subgraph", "f32", "something_unknown"),
    ]
    found = coverage.runtime_coverage(_Compiled(ops), types)
    assert found.int8 == {"Subgraph(MatMul,Multiply,Softmax)": 1}
    assert found.float == {"Subgraph(Add)": 1, "Subgraph": 1}
    assert found.boundaries == {"FakeQuantize": 1, "Dequantization": 1}


def test_grouped_convolution_weights_say_depthwise_or_grouped() -> None:
    pytest.importorskip("openvino")
    ops = [
        _Op("dense", "Convolution", "u8", weight=(8, 4, 3, 3)),
        _Op("dw", "Convolution", "f32", weight=(4, 1, 1, 3, 3)),
        _Op("grouped", "Convolution", "f32", weight=(2, 4, 2, 3, 3)),
    ]
    found = coverage.runtime_coverage(_Compiled(ops))
    assert found.int8 == {"Convolution": 1}
    assert found.float == {"Convolution (depthwise)": 1, "Convolution (grouped)": 1}
