"""The FX fake-quant simulation uses the observer's scale and zero point and its dtype's code range."""

from __future__ import annotations

import torch
from torch.ao.quantization.observer import HistogramObserver, PlaceholderObserver

from backends.torch.fx_fakequant import FixedFakeQuant, _fixed


def test_a_reduced_range_observer_still_simulates_the_full_quint8_range() -> None:
    """x86's activation observers scale the calibration range to codes 0..127 (reduce_range), but the
    converted graph's quint8 tensors hold 0..255: a value twice the calibrated maximum is not clipped."""
    observer = HistogramObserver(reduce_range=True)
    observer(torch.linspace(0, 1, 1000))
    assert (observer.quant_min, observer.quant_max) == (0, 127)
    fixed = _fixed(observer)
    assert isinstance(fixed, FixedFakeQuant) and (fixed.quant_min, fixed.quant_max) == (0, 255)
    scale, zero_point = observer.calculate_qparams()
    value = torch.tensor([1.9])
    deployed = torch.quantize_per_tensor(value, float(scale), int(zero_point), torch.quint8).dequantize()
    torch.testing.assert_close(fixed(value), deployed)


def test_an_observer_of_a_float_tensor_is_an_identity() -> None:
    assert isinstance(_fixed(PlaceholderObserver(dtype=torch.float32)), torch.nn.Identity)
