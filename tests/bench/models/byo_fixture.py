"""A user's own model package, as `--model tests.bench.models.byo_fixture:tiny_net` imports it."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Two 3x3 convs and a 1x1 head: enough to segment the synthetic nuclei a little, fast to run."""

    gradcam_layer = "features"

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_net(in_channels: int, num_classes: int) -> TinyNet:
    return TinyNet(in_channels, num_classes)


def tiny_net_no_arguments() -> TinyNet:
    return TinyNet(1, 2)


def not_a_module() -> str:
    return "a string"


def raises() -> nn.Module:
    raise RuntimeError("the user's factory is broken")


def wrong_classes(in_channels: int) -> TinyNet:
    return TinyNet(in_channels, 5)
