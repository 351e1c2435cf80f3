"""The OpenVINO coverage rule on runtime-graph records (no compile needed)."""

from backends.openvino import coverage


class _Any:
    def __init__(self, value: str) -> None:
        self.value = value

    def astype(self, _type: type) -> str:
        return self.value


class _Op:
    def __init__(self, name: str, kind: str, precision: str) -> None:
        self.name, self.info = name, {"layerType": _Any(kind), "runtimePrecision": _Any(precision)}

    def get_friendly_name(self) -> str:
        return self.name

    def get_rt_info(self) -> dict:
        return self.info


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
