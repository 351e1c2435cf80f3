"""DeepLabV3+ with a ResNet-18 encoder.

Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation", ECCV 2018; encoder: He, Zhang, Ren, Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016 (ResNet-18, BasicBlock), written out here because torchvision is not a dependency.

- Encoder: ResNet-18 at output stride 16: `layer4` keeps stride 1 and dilates its 3x3 convs by 2.
- ASPP (256 channels): 1x1 conv, three atrous 3x3 at rates 6/12/18, and image pooling
  (global average pool, 1x1 conv + BN + ReLU, bilinear upsample back); concatenated and projected by
  a 1x1 conv + BN + ReLU. The paper's training-time dropout after the projection is left out so the
  ASPP output is a ReLU output (Grad-CAM layer) and the forward pass has nothing mode-dependent but BN.
- Decoder: `layer1` features (stride 4) reduced to 48 channels (1x1 conv + BN + ReLU), concatenated
  with the ASPP output upsampled bilinearly x4, two 3x3 conv + BN + ReLU (256), a 1x1 classifier, and a
  bilinear upsample to the input size.
- The 3x3 convs of ASPP and decoder are depthwise separable, as the paper's title says and its
  reference implementation does (`aspp_with_separable_conv`, `decoder_use_separable_conv`): depthwise
  3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU. That keeps the head at ~1.2 M parameters (dense
  3x3 convs would add ~4.4 M to the 11.2 M encoder). BatchNorm follows every conv but the classifier.

Grad-CAM: the default layer is `decoder` (its last ReLU, 256 channels at stride 4); only the 1x1 `head`
and the final bilinear upsample lie between it and the logits. `gradcam_layers` also names
`backbone.layer1` (low-level), `backbone.layer4` (deep encoder) and `aspp`. Grad-CAM's class score is
the softmax over classes summed over pixels (`bench.gradcam.method.class_scores`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.models import register_model


def _init_weights(model: nn.Module) -> None:
    """He initialization (fan-out, ReLU) for convs, unit BN, as torchvision's ResNet does."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ConvBNReLU(nn.Sequential):
    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, dilation: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(
                cin,
                cout,
                kernel,
                stride,
                padding=dilation * (kernel - 1) // 2,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3x3 (atrous) + BN + ReLU, then pointwise 1x1 + BN + ReLU."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__(ConvBNReLU(cin, cin, 3, dilation=dilation, groups=cin), ConvBNReLU(cin, cout, 1))


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN with an identity (or 1x1 projection) shortcut; `act` is the block output."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + identity)


def _stage(cin: int, cout: int, blocks: int, stride: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(cin, cout, stride, dilation), *(BasicBlock(cout, cout, 1, dilation) for _ in range(blocks - 1))
    )


class ResNet18Encoder(nn.Module):
    """ResNet-18 without pooling/fc; returns (layer1 at stride 4, layer4 at stride 16)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.stem = ConvBNReLU(in_channels, 64, 7, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, 2, 1)
        self.layer2 = _stage(64, 128, 2, 2)
        self.layer3 = _stage(128, 256, 2, 2)
        self.layer4 = _stage(256, 512, 2, 1, dilation=2)  # output stride 16: stride replaced by dilation

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.maxpool(self.stem(x)))
        return low, self.layer4(self.layer3(self.layer2(low)))


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global context broadcast back to the feature map's size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNReLU(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(self.pool(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int = 256, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [
                ConvBNReLU(cin, cout, 1),
                *(SeparableConvBNReLU(cin, cout, rate) for rate in rates),
                ImagePooling(cin, cout),
            ]
        )
        self.project = ConvBNReLU(cout * len(self.branches), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class Decoder(nn.Module):
    """Low-level features + upsampled ASPP output -> two separable 3x3 conv + BN + ReLU; `convs` ends in a ReLU."""

    def __init__(self, low_channels: int, aspp_channels: int = 256, reduced: int = 48, width: int = 256) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(low_channels, reduced, 1)
        self.convs = nn.Sequential(
            SeparableConvBNReLU(reduced + aspp_channels, width), SeparableConvBNReLU(width, width)
        )

    def forward(self, aspp: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(aspp, size=low.shape[-2:], mode="bilinear", align_corners=False)  # x4
        return self.convs(torch.cat([up, self.reduce(low)], dim=1))


class DeepLabV3Plus(nn.Module):
    gradcam_layer = "decoder"
    gradcam_layers = {
        "low_level": "backbone.layer1",
        "encoder": "backbone.layer4",
        "aspp": "aspp",
        "decoder": "decoder",
    }

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = ResNet18Encoder(in_channels)
        self.aspp = ASPP(512)
        self.decoder = Decoder(64)
        self.head = nn.Conv2d(256, num_classes, 1)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, deep = self.backbone(x)
        logits = self.head(self.decoder(self.aspp(deep), low))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("deeplabv3plus-resnet18")
def deeplabv3plus_resnet18(in_channels: int, num_classes: int) -> DeepLabV3Plus:
    return DeepLabV3Plus(in_channels, num_classes)
