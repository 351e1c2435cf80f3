"""MobileNetV2 and MobileNetV3-Large feature extractors for the segmentation zoo, in plain PyTorch.

Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018;
Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam, "Searching for MobileNetV3",
ICCV 2019. Written out here because torchvision (whose layer tables these follow, module for module, so
the parameter counts are torchvision's) cannot be imported next to the CPU torch.

Both are built from inverted residual blocks: a 1x1 expansion conv (absent at expansion 1), a depthwise
k x k conv, optionally squeeze-excitation, and a linear 1x1 projection (BN, no activation), with an
identity shortcut where the block keeps stride 1 and width. Each part is a named submodule (`expand`,
`depthwise`, `se`, `project`) so a Grad-CAM layer can name one, and every activation is a module
(`nn.ReLU6`, `nn.ReLU`, `nn.Hardswish`, `nn.Hardsigmoid`), never a functional call, so that FX, PT2E and
ONNX quantizers see and fuse them.

Output stride 16 for segmentation: the stride-32 stage keeps stride 1 and dilates its depthwise convs
by 2 instead, so dense prediction keeps twice the resolution at the same parameter count. Where the
dilation starts differs between the two references and is kept as each has it:

- MobileNetV2 (DeepLab's TensorFlow `mobilenet_v2` feature extractor with `output_stride=16`, as in the
  MLPerf Mobile segmentation model): the stage's first block drops its stride at rate 1, the later
  blocks use rate 2 (`rate *= stride` after the block).
- MobileNetV3-Large (torchvision's `mobilenet_v3_large(dilated=True)`, the LR-ASPP backbone): every block
  of the last stage, its first included, uses dilation 2.

BatchNorm keeps PyTorch's defaults (eps 1e-5, momentum 0.1) rather than MobileNetV3's ImageNet values
(eps 1e-3, momentum 0.01): the reference recipes train for a few hundred steps, and momentum 0.01 would
leave the running statistics, which evaluation uses, far from the trained weights' activations.
"""

from __future__ import annotations

import torch
from torch import nn

# MobileNetV2 (expansion t, output channels c, blocks n, stride s): the paper's Table 2, width 1.0
MOBILENET_V2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
V2_STEM = 32

# MobileNetV3-Large (kernel, expanded channels, output channels, squeeze-excitation, activation, stride):
# the paper's Table 1 (torchvision's `_mobilenet_v3_conf("mobilenet_v3_large")`); "RE" ReLU, "HS" hard-swish
MOBILENET_V3_LARGE = (
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
)
V3_STEM = 16
V3_LAST = 960  # the final 1x1 conv (6 x 160), kept: LR-ASPP's 'high' input


def make_divisible(value: float, divisor: int = 8) -> int:
    """The channel rounding of the MobileNet reference code: nearest multiple of `divisor`, never more
    than 10% below `value` (sets the squeeze-excitation widths)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activation(kind: str) -> nn.Module:
    return {"RE6": nn.ReLU6, "RE": nn.ReLU, "HS": nn.Hardswish}[kind]()


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BN + activation module; `act=None` leaves it linear (the projections)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: str | None = "RE6",
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(_activation(act))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """MobileNetV3's squeeze-excitation: global average pool, 1x1 conv + ReLU to a quarter of the
    channels (rounded by `make_divisible`), 1x1 conv + hard-sigmoid gate, channel-wise product."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """1x1 expand + act, depthwise k x k + act (strided or dilated), optional squeeze-excitation, linear
    1x1 projection; identity shortcut at stride 1 and equal widths."""

    def __init__(
        self,
        cin: int,
        expanded: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        se: bool = False,
        act: str = "RE6",
    ) -> None:
        super().__init__()
        self.expand = ConvBNAct(cin, expanded, 1, act=act) if expanded != cin else nn.Identity()
        self.depthwise = ConvBNAct(expanded, expanded, kernel, stride, dilation, groups=expanded, act=act)
        self.se = SqueezeExcitation(expanded) if se else nn.Identity()
        self.project = ConvBNAct(expanded, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.residual else out


class LowHighEncoder(nn.Module):
    """An encoder whose `features` run in order and which returns (the output of `features[LOW_INDEX]`,
    the last one's): the low-level and high-level features a segmentation head takes."""

    LOW_INDEX: int
    features: nn.Sequential

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = x
        for i, block in enumerate(self.features):
            x = block(x)
            if i == self.LOW_INDEX:
                low = x
        return low, x


class MobileNetV2Encoder(LowHighEncoder):
    """MobileNetV2 `features` without the final 1x1 conv to 1280 (as DeepLab's `layer_18` endpoint):
    returns (the 24-channel stride-4 stage's output, the 320-channel output at stride 16)."""

    LOW_INDEX = 3  # features.3: last block of the stride-4 stage
    low_channels = 24
    out_channels = 320

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ConvBNAct(in_channels, V2_STEM, 3, 2)]
        cin, current_stride, rate = V2_STEM, 2, 1
        for t, c, n, s in MOBILENET_V2:
            for i in range(n):
                stride = s if i == 0 else 1
                block_rate = rate
                if stride > 1 and current_stride == 16:  # output stride 16 reached: dilate from the next block
                    stride, rate = 1, rate * stride
                current_stride *= stride
                blocks.append(InvertedResidual(cin, cin * t, c, 3, stride, block_rate))
                cin = c
        self.features = nn.Sequential(*blocks)


class MobileNetV3LargeEncoder(LowHighEncoder):
    """MobileNetV3-Large `features` (stem, 15 blocks, final 1x1 conv + hard-swish to 960), dilated: returns
    ('low', 'high') as torchvision's LR-ASPP takes them: the output of `features.4` (the first block of
    the stride-8 stage, 40 channels; torchvision picks the first block of each stage) and of `features.16`
    (960 channels at stride 16)."""

    LOW_INDEX = 4
    low_channels = 40
    out_channels = V3_LAST

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ConvBNAct(in_channels, V3_STEM, 3, 2, act="HS")]
        cin = V3_STEM
        for index, (kernel, expanded, cout, se, act, stride) in enumerate(MOBILENET_V3_LARGE):
            dilation = 2 if index >= len(MOBILENET_V3_LARGE) - 3 else 1  # the last stage, its first block included
            stride = 1 if dilation > 1 else stride
            blocks.append(InvertedResidual(cin, expanded, cout, kernel, stride, dilation, se, act))
            cin = cout
        blocks.append(ConvBNAct(cin, V3_LAST, 1, act="HS"))
        self.features = nn.Sequential(*blocks)


def init_weights(model: nn.Module) -> None:
    """He initialization (fan-in, ReLU) for convs with zero biases, unit BN, and a zero scale on the
    projection BN of every residual block (torchvision's `zero_init_residual` for ResNets; HRNet here does
    the same): each residual block starts as the identity. torchvision's MobileNet init (fan-out) shrinks
    the eval-mode activations by a constant factor per block: a random DeepLab v3+ MobileNetV2 gave logits
    of ~3e-4, whose argmax any quantization flips, so no int8 test on random weights could pass; fan-in
    without the zero scales grows them to ~20 through the residual sums. With both: ~3-4."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, InvertedResidual) and m.residual:
            nn.init.zeros_(m.project[1].weight)
