"""A small street-scene network with the traits that keep int8 slow (issue 17): max-unpooling with the
encoder's indices, PReLU, asymmetric (1x5 / 5x1) and dilated convolutions, a transposed convolution.

It follows ENet's layout (initial block = strided conv beside a max-pool; bottlenecks = 1x1 reduce,
a main conv, 1x1 expand, added to the skip path; the decoder unpools with the encoder's indices), at a
width that runs in a few milliseconds here. Loaded as a user model:
`--models tests.bench.models.slow_int8_fixture:enet_mini` (with `--weights`, no training).
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    """1x1 reduce -> main conv (regular, dilated or asymmetric) -> 1x1 expand, PReLU, plus the skip."""

    def __init__(self, channels: int, kind: str = "regular", dilation: int = 1) -> None:
        super().__init__()
        inner = channels // 4
        self.reduce = nn.Sequential(nn.Conv2d(channels, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.PReLU(inner))
        if kind == "asymmetric":
            main: nn.Module = nn.Sequential(
                nn.Conv2d(inner, inner, (1, 5), padding=(0, 2), bias=False),
                nn.Conv2d(inner, inner, (5, 1), padding=(2, 0), bias=False),
            )
        else:
            main = nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation, bias=False)
        self.main = nn.Sequential(main, nn.BatchNorm2d(inner), nn.PReLU(inner))
        self.expand = nn.Sequential(nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.out = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.expand(self.main(self.reduce(x))))


class Down(nn.Module):
    """Downsampling bottleneck: a strided conv path beside a max-pool whose indices the decoder unpools with."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(out_channels),
        )
        self.widen = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, indices = self.pool(x)
        return self.conv(x) + self.widen(pooled), indices


class Up(nn.Module):
    """Upsampling bottleneck: max-unpool with the encoder's indices beside a transposed conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.narrow = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.unpool = nn.MaxUnpool2d(2)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(out_channels),
        )

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.unpool(self.narrow(x), indices) + self.deconv(x)


class EnetMini(nn.Module):
    gradcam_layer = "stage2"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 32) -> None:
        super().__init__()
        self.initial = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.initial_act = nn.PReLU(width)
        self.down1 = Down(width, 2 * width)
        self.stage1 = nn.Sequential(Bottleneck(2 * width), Bottleneck(2 * width, "asymmetric"))
        self.down2 = Down(2 * width, 4 * width)
        self.stage2 = nn.Sequential(
            Bottleneck(4 * width, dilation=2),
            Bottleneck(4 * width, "asymmetric"),
            Bottleneck(4 * width, dilation=4),
            Bottleneck(4 * width, dilation=8),
        )
        self.up2 = Up(4 * width, 2 * width)
        self.stage3 = Bottleneck(2 * width)
        self.up1 = Up(2 * width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial_act(self.initial(x))
        x, indices1 = self.down1(x)
        x, indices2 = self.down2(self.stage1(x))
        x = self.stage3(self.up2(self.stage2(x), indices2))
        return self.head(self.up1(x, indices1))


def enet_mini(in_channels: int, num_classes: int) -> EnetMini:
    return EnetMini(in_channels, num_classes)
