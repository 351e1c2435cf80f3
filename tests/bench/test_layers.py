import pytest
from torch import nn

from bench.backend import check_float_layers, parse_float_layers
from bench.backend.layers import weighted_modules
from bench.errors import UsageError


def test_float_layers_parse_in_order_without_blanks_or_repeats() -> None:
    assert parse_float_layers(" a.0, b ,,a.0,c ") == ("a.0", "b", "c")
    assert parse_float_layers("") == ()


def test_weighted_modules_are_the_conv_and_linear_module_paths() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.ConvTranspose2d(4, 2, 2)))
    layers = weighted_modules(model)
    assert [(layer.name, layer.op_type) for layer in layers] == [("0", "Conv2d"), ("3.0", "ConvTranspose2d")]


def test_a_name_that_is_no_layer_is_a_usage_error() -> None:
    layers = weighted_modules(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    check_float_layers("b", ("0",), layers)
    with pytest.raises(UsageError, match=r"b\.float_layers names '1'"):
        check_float_layers("b", ("0", "1"), layers)
