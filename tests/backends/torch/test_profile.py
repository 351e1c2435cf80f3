"""The torch.profiler parsing the torch sessions share: outermost ops only, counted per call, their
precision, and the three ways of finding a layer (eager ranges, TorchScript graph order, shapes)."""

import numpy as np
import pytest
import torch
from torch import nn

from backends.torch.profile import (
    CALL_RANGE,
    TRACE_FILE,
    OpEvent,
    layer_ranges,
    op_family,
    op_type,
    outermost_ops,
    profile_calls,
    unattributed,
    uneven_calls,
)
from backends.torch.profile_layers import (
    ProgramLayer,
    align,
    layers_by_shapes,
    layers_in_graph_order,
    script_op_sequence,
)

CALLS = 3


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        return self.head(torch.cat([x, x], 1))


def _profile(model: nn.Module, x: torch.Tensor, tmp_path, calls: int = CALLS):
    def run() -> None:
        with torch.inference_mode():
            model(x)

    with layer_ranges(model):
        return profile_calls(run, lambda: None, calls, tmp_path)


def test_only_outermost_ops_count_once_per_call_inside_their_layer(tmp_path):
    torch.manual_seed(0)
    model = Tiny().eval()
    passed = _profile(model, torch.randn(1, 1, 64, 64), tmp_path)
    names = {event.name for event in passed.events}
    assert "aten::conv2d" in names
    assert not names & {"aten::convolution", "aten::_convolution", "aten::mkldnn_convolution", "aten::clamp_min"}
    profile = passed.to_profile([e.range_layer for e in passed.events], "module hooks")
    rows = {(op.name, op.layer): op for op in profile.ops}
    assert set(rows) == {
        ("aten::conv2d", "stem.0"),
        ("aten::relu", "stem.1"),
        ("aten::max_pool2d", "pool"),
        ("aten::cat", ""),
        ("aten::conv2d", "head"),
    }
    assert all(op.calls == CALLS for op in profile.ops)  # the warm-up calls are not counted
    assert all(op.precision == "fp32" and op.total_us > 0 for op in profile.ops)
    assert 0 < profile.ops_us <= profile.wall_us  # exclusive: the ops never add up past the wall time
    assert profile.method == "torch.profiler" and profile.calls == CALLS
    assert "has no layer (aten::cat" in profile.notes
    assert (tmp_path / TRACE_FILE).stat().st_size > 0


def test_layer_ranges_leave_no_hook_behind():
    model = Tiny().eval()
    with layer_ranges(model):
        assert model.stem[0]._forward_pre_hooks and model.stem[0]._forward_hooks
        assert model.stem._forward_pre_hooks  # blocks too: ops of their own forward are theirs
        assert not model._forward_pre_hooks  # the model itself names no layer
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_precision_follows_the_inputs(tmp_path):
    weight = torch.randn(4, 4, 3, 3)
    x = torch.randn(1, 4, 16, 16)
    q = torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)

    def run() -> None:
        torch.nn.functional.conv2d(x, weight)
        torch.nn.functional.conv2d(x.bfloat16(), weight.bfloat16())
        torch.cat([q, q], 1)  # a TensorList input: its callees' inputs tell
        q.dequantize()

    passed = profile_calls(run, lambda: None, 1, tmp_path)
    precisions = [(e.name, e.precision) for e in passed.events if e.name != "aten::_to_copy" and e.name != "aten::to"]
    assert precisions == [
        ("aten::conv2d", "fp32"),
        ("aten::conv2d", "bf16"),
        ("aten::cat", "int8"),
        ("aten::dequantize", "int8"),
    ]


def test_align_skips_nodes_that_did_not_run_and_leaves_unknown_ops_out():
    assert align(["a", "b", "c", "x"], ["a", "q", "b", "c"]) == [0, 2, 3, None]
    assert align(["a", "a"], ["a", "b", "a"]) == [0, 2]
    assert align([], ["a"]) == [] and align(["a"], []) == [None]


def _event(name: str, call: int = 0, shapes=((1, 4, 8, 8),), us: float = 1.0) -> OpEvent:
    return OpEvent(name, call, us, "", "", tuple(shapes))


def test_graph_order_gives_each_call_its_layers():
    sequence = [("aten::quantize_per_tensor", ""), ("aten::size", "a"), ("quantized::conv2d", "a"), ("aten::cat", "")]
    sequence += [("quantized::conv2d", "b")]
    names = ["aten::quantize_per_tensor", "quantized::conv2d", "aten::cat", "quantized::conv2d", "aten::mystery"]
    events = [_event(name, call) for call in range(2) for name in names]
    layers, unmatched = layers_in_graph_order(events, sequence)
    assert layers == ["", "a", "", "b", ""] * 2
    assert unmatched == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_script_op_sequence_names_whole_module_paths():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.act = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(x)) + x

    class Nested(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # two calls in a row through an attribute of the same name ("0"): told apart by their paths
            self.features = nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3)), nn.Sequential(nn.Conv2d(4, 4, 3)))
            self.pool = nn.MaxPool2d(2)  # calls a function (F.max_pool2d)
            self.blocks = nn.ModuleList([Block(), Block()])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(self.features(x))
            for block in self.blocks:
                x = block(x)
            return torch.cat([x, x], 1)

    scripted = torch.jit.script(Nested().eval())
    wanted = {"aten::conv2d", "aten::relu", "aten::max_pool2d", "aten::add", "aten::cat"}
    found = [(kind, path) for kind, path in script_op_sequence(scripted) if kind in wanted]
    assert found == [
        ("aten::conv2d", "features.0.0"),
        ("aten::conv2d", "features.1.0"),
        ("aten::max_pool2d", "pool"),
        ("aten::conv2d", "blocks.0.conv"),
        ("aten::relu", "blocks.0.act"),
        ("aten::add", "blocks.0"),
        ("aten::conv2d", "blocks.1.conv"),
        ("aten::relu", "blocks.1.act"),
        ("aten::add", "blocks.1"),
        ("aten::cat", ""),
    ]


def test_kernel_names_lose_their_graph_id_and_index():
    assert op_type("graph_0_cpp_fused_cat_quantize_per_tensor_3") == "cpp_fused_cat_quantize_per_tensor"
    assert op_type("cpp_fused_9") == "cpp_fused"
    assert op_type("quantized::conv2d_relu") == "quantized::conv2d_relu"


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("onednn::qconv_pointwise", "conv"),
        ("onednn::qconv2d_pointwise.binary", "conv"),
        ("mkldnn::_convolution_transpose_pointwise", "conv_transpose"),
        ("aten.conv_transpose2d.input", "conv_transpose"),
        ("onednn::qlinear_pointwise", "linear"),
        ("aten::addmm", "linear"),
        ("quantized::max_pool2d", "max_pool"),
        ("aten.max_pool2d.default", "max_pool"),
        ("graph_0_cpp_fused_max_pool2d_1", None),  # a fused kernel is not one model op
        ("aten::relu", None),
    ],
)
def test_op_family(name, family):
    assert op_family(name) == family


def test_shapes_and_order_tell_layers_apart():
    candidates = [
        ProgramLayer("conv", "a", (4, 8, 8), (4, 4, 3, 3)),
        ProgramLayer("conv", "b", (4, 8, 8), (4, 4, 3, 3)),  # identical to a: order decides
        ProgramLayer("max_pool", "pool", (4, 8, 8), None),
        ProgramLayer("conv_transpose", "up", (4, 4, 4), (4, 2, 2, 2)),  # (in, out, kh, kw)
    ]
    qconv = ((1, 4, 8, 8), (), (), (4, 4, 3, 3))
    events = [
        _event("graph_0_cpp_fused_quantize_per_tensor_0", shapes=()),
        _event("onednn::qconv_pointwise", shapes=qconv),
        _event("onednn::qconv_pointwise", shapes=qconv),
        _event("quantized::max_pool2d"),
        _event("mkldnn::_convolution_transpose_pointwise", shapes=((1, 4, 4, 4), (2, 4, 2, 2))),  # prepacked (out, in)
        _event("onednn::qconv_pointwise", shapes=((1, 4, 16, 16), (), (), (4, 4, 3, 3))),  # no layer this shape
        _event("onednn::qconv_pointwise", call=1, shapes=qconv),  # a new call starts over
    ]
    layers, unmatched = layers_by_shapes(events, candidates)
    assert layers == ["", "a", "b", "pool", "up", "", "a"]
    assert unmatched == 1


def test_notes_name_unattributed_time_and_uneven_calls(tmp_path):
    passed = _profile(Tiny().eval(), torch.randn(1, 1, 16, 16), tmp_path, calls=2)
    profile = passed.to_profile([""] * len(passed.events), "none")
    assert profile.attributed_us == 0 and "100.0% of op time has no layer" in unattributed(profile.ops)
    events = [_event("aten::relu", 0), _event("aten::relu", 1), _event("aten::add", 1)]
    assert uneven_calls(events, 2) == "the profiled calls ran 1 to 2 operators each"
    assert uneven_calls(events[:2], 2) == ""


def test_a_profile_needs_a_call(tmp_path):
    with pytest.raises(ValueError, match="at least one call"):
        profile_calls(lambda: None, lambda: None, 0, tmp_path)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_precision_of_an_int8_module(tmp_path):
    """A quantized conv module records `quantized::conv2d` with quint8 inputs."""
    conv = torch.ao.nn.quantized.Conv2d(4, 4, 3)
    q = torch.quantize_per_tensor(torch.from_numpy(np.ones((1, 4, 8, 8), np.float32)), 0.1, 0, torch.quint8)
    passed = profile_calls(lambda: conv(q), lambda: None, 2, tmp_path)
    assert [(e.name, e.precision, e.call) for e in passed.events] == [
        ("quantized::conv2d", "int8", 0),
        ("quantized::conv2d", "int8", 1),
    ]


def test_on_cuda_an_op_counts_the_device_time_of_its_kernels():
    """Without a GPU no kernel runs: every op's device time is 0, read from the same events."""
    from torch.profiler import ProfilerActivity, profile, record_function

    x = torch.randn(1, 4, 16, 16)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        with record_function(f"{CALL_RANGE}0"):
            torch.relu(x + 1)
    on_cpu, _ = outermost_ops(profiler.events(), cuda=False)
    on_cuda, _ = outermost_ops(profiler.events(), cuda=True)
    assert [e.name for e in on_cpu] == [e.name for e in on_cuda] == ["aten::add", "aten::relu"]
    assert all(e.us > 0 for e in on_cpu) and all(e.us == 0 for e in on_cuda)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_tensor_turned_number_matches_the_item_call_torchscript_makes_of_it(tmp_path):
    """aten::Float in the graph (a quantized op's scale kept as a tensor) runs, and is recorded, as aten::item."""

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.tensor(2.0))
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) * float(self.scale)

    scripted = torch.jit.script(Scaled().eval())
    x = torch.randn(1, 1, 4, 4)
    passed = profile_calls(lambda: scripted(x), lambda: None, 2, tmp_path)
    assert [e.name for e in passed.events] == ["aten::conv2d", "aten::item", "aten::mul"] * 2
    assert layers_in_graph_order(passed.events, script_op_sequence(scripted)) == (["conv", "", ""] * 2, 0)
