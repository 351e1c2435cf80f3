"""U-Net for nuclei segmentation.

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015 — in the compact form used by the Data Science Bowl 2018 nuclei kernels: four encoder
blocks of two 3x3 conv + ReLU (16-32-64-128) with 2x2 max-pool, a 256-wide bottleneck, 2x2
transposed-conv upsampling with skip concatenation, and a 1x1 head to class logits.

Grad-CAM feature layer: `decoder.3` — the last decoder block, whose final ReLU gathers the
full-resolution features the head reads. `gradcam_layers` adds the deepest encoder block
`encoder.3` and the `bottleneck`, to show how attention forms through depth.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models import register_model


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    gradcam_layer = "decoder.3"
    gradcam_layers = {"encoder": "encoder.3", "bottleneck": "bottleneck", "decoder": "decoder.3"}

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.encoder = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.encoder.append(DoubleConv(c, w))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(c, 2 * c)
        c = 2 * c
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for w in reversed(widths):
            self.upsample.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.decoder.append(DoubleConv(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.upsample, self.decoder, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@register_model("unet")
def unet(in_channels: int, num_classes: int) -> UNet:
    return UNet(in_channels, num_classes)
