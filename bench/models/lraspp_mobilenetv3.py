"""LR-ASPP on MobileNetV3-Large: the segmentation head of the MobileNetV3 paper.

Howard et al., "Searching for MobileNetV3", ICCV 2019, section 6.1.3 (Lite Reduced Atrous Spatial Pyramid
Pooling), as torchvision's `lraspp_mobilenet_v3_large` builds it (same modules, same parameter count:
3,221,538 with 3 input channels and 21 classes; `tests/bench/models/test_zoo.py` checks it):

- Encoder: MobileNetV3-Large (`bench.models.mobilenet`): inverted residuals with hard-swish and
  squeeze-excitation gated by a hard-sigmoid, the last stage dilated (output stride 16), then the 1x1
  conv + hard-swish to 960 channels ('high'). 'low' is the output of `features.4` (40 channels, stride 8).
- Head: `gate` multiplies a 1x1 conv + BN + ReLU branch (128 channels) by a global-average-pool branch
  (1x1 conv to 128, sigmoid): a per-image channel attention in place of ASPP's atrous branches. `head`
  upsamples the gated features bilinearly to the low features' size, classifies each by a 1x1 conv
  (`high_classifier`), adds a 1x1 classifier of the low features (`low_classifier`), and the sum is
  upsampled bilinearly to the input size. The pool branch uses `nn.Sigmoid` as the paper and torchvision
  do; the hard-sigmoid is the squeeze-excitation gate.

Grad-CAM: the default layer is `low`, the squeeze-excitation output of the first stride-8 block
(`backbone.features.4.se`: ReLU x hard-sigmoid, 72 channels), the last non-negative layer both branches
depend on (its projection is the low features, which the head classifies and the encoder carries on to
the high-level branch). `gate` (ReLU x sigmoid, 128 channels at stride 16) is not the default: the head
also takes a second input, the low features, whose classifier adds to the logits without passing
through `gate` (`head(gate, low)`), so `gate` explains the high-level branch alone, and a trained model
may use that branch only against a class: on synthetic-nuclei it lowers the nucleus logit at every pixel,
so every Grad-CAM map at `gate` is zero and there is nothing to compare. The graph-cut Grad-CAM keeps the
low features fixed when it cuts at `gate`. `gradcam_layers` also names `gate`, `gate.cbr` (the ReLU branch
alone), the depthwise ReLU of the stride-4 stage (`backbone.features.3.depthwise`, 72 channels) and of
the last stride-8 block (`backbone.features.6.depthwise`, 120 channels). The encoder's stride-16 layers
are hard-swish outputs, which go negative, so no Grad-CAM layer is taken there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.models import register_model
from bench.models.mobilenet import MobileNetV3LargeEncoder, init_weights

INTER_CHANNELS = 128


class LRASPPGate(nn.Module):
    """1x1 conv + BN + ReLU times a sigmoid-gated global-average-pool branch (`cbr` x `scale`)."""

    def __init__(self, cin: int, inter: int = INTER_CHANNELS) -> None:
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(cin, inter, 1, bias=False), nn.BatchNorm2d(inter), nn.ReLU())
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, inter, 1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cbr(x) * self.scale(x)


class LRASPPClassifier(nn.Module):
    """The gated features upsampled to the low features' size, both classified by a 1x1 conv, summed."""

    def __init__(self, low_channels: int, inter: int, num_classes: int) -> None:
        super().__init__()
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, gated: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(gated, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(up)


class LRASPPMobileNetV3(nn.Module):
    gradcam_layer = "backbone.features.4.se"
    gradcam_layers = {
        "stride4": "backbone.features.3.depthwise",
        "low": "backbone.features.4.se",
        "stride8": "backbone.features.6.depthwise",
        "branch": "gate.cbr",
        "gate": "gate",
    }
    gradcam_head_inputs = ("gate", "backbone.features.4")  # what the head reads: `head(gate, low)`

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = MobileNetV3LargeEncoder(in_channels)
        self.gate = LRASPPGate(self.backbone.out_channels)
        self.head = LRASPPClassifier(self.backbone.low_channels, INTER_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        logits = self.head(self.gate(high), low)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("lraspp-mobilenetv3")
def lraspp_mobilenetv3(in_channels: int, num_classes: int) -> LRASPPMobileNetV3:
    return LRASPPMobileNetV3(in_channels, num_classes)
