"""DeepLabV3+ with a MobileNetV2 encoder: the mobile segmentation model (MLPerf Mobile's is DeepLab on MobileNetV2).

Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation", ECCV 2018; encoder: Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018 (width 1.0, `bench.models.mobilenet`).

- Encoder: MobileNetV2 at output stride 16 as the TensorFlow models repo's DeepLab builds it
  (`feature_extractor` `mobilenet_v2`, `output_stride=16`): the 160-channel stage keeps stride 1 and
  dilates its later blocks and the 320-channel block by 2; ReLU6 throughout, no final 1x1 conv to 1280
  (DeepLab stops at `layer_18`, 320 channels). 1.81 M parameters, torchvision's `mobilenet_v2().features[:18]`.
- ASPP and decoder: the DeepLab v3+ head of `deeplabv3plus-resnet18` (`bench.models.deeplabv3plus_resnet18`),
  unchanged so the two encoders compare on one head: 256 channels, 1x1 conv, three depthwise separable
  atrous 3x3 at rates 6/12/18 and image pooling, a 1x1 projection; decoder on the stride-4 features
  reduced to 48 channels, two separable 3x3 (256), a 1x1 classifier and a bilinear upsample to the input
  size. ReLU (not ReLU6) in the head, as in the reference implementation.
- Low-level features: the output of the 24-channel stride-4 stage (`features.3`), as torchvision-style
  ports do (VainF/DeepLabV3Plus-Pytorch, segmentation_models_pytorch). The TensorFlow code takes the
  144-channel depthwise output inside that block (`layer_4/depthwise_output`) instead; it is the
  `low_level` Grad-CAM layer here.

Size: 1.81 M encoder + 0.75 M ASPP (on 320 channels) + 0.15 M decoder = 2.71 M parameters (2 classes),
counted here; the encoder count equals torchvision's `mobilenet_v2` (3,504,872) less its classifier and
final conv (`tests/bench/models/test_zoo.py` checks it). Dense 3x3 convs in ASPP and decoder, as some
ports have them, would add ~3.1 M. The int8 question this model asks is the depthwise one: 17
depthwise convs in the encoder and 5 in the head.

Grad-CAM: the default layer is `decoder` (its last ReLU, 256 channels at stride 4); only the 1x1 `head`
and the final bilinear upsample lie between it and the logits. `gradcam_layers` also names
`backbone.features.3.depthwise` (TensorFlow DeepLab's low-level endpoint, ReLU6, 144 channels at stride
4), `backbone.features.17.depthwise` (the last encoder block's depthwise ReLU6, 960 channels at stride
16) and `aspp`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.models import register_model
from bench.models.deeplabv3plus_resnet18 import ASPP, Decoder
from bench.models.mobilenet import MobileNetV2Encoder, init_weights


class DeepLabV3PlusMobileNetV2(nn.Module):
    gradcam_layer = "decoder"
    gradcam_layers = {
        "low_level": "backbone.features.3.depthwise",
        "encoder": "backbone.features.17.depthwise",
        "aspp": "aspp",
        "decoder": "decoder",
    }

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = MobileNetV2Encoder(in_channels)
        self.aspp = ASPP(self.backbone.out_channels)
        self.decoder = Decoder(self.backbone.low_channels)
        self.head = nn.Conv2d(256, num_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, deep = self.backbone(x)
        logits = self.head(self.decoder(self.aspp(deep), low))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("deeplabv3plus-mobilenetv2")
def deeplabv3plus_mobilenetv2(in_channels: int, num_classes: int) -> DeepLabV3PlusMobileNetV2:
    return DeepLabV3PlusMobileNetV2(in_channels, num_classes)
