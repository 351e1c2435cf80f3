"""HRNetV2-W18-Small (v2 configuration) for semantic segmentation.

Wang, Sun, Cheng, Jiang, Deng, Zhao, Liu, Mu, Tan, Wang, Liu, Xiao, "Deep High-Resolution Representation
Learning for Visual Recognition", TPAMI 2020 — the `seg_hrnet_w18_small_v2` configuration of the
authors' HRNet-Semantic-Segmentation code:

- stem: two stride-2 3x3 conv + BN + ReLU (64 channels, stride 4);
- stage 1: two Bottleneck blocks (256 channels);
- stages 2-4: 1, 3 and 2 multi-resolution modules on 2, 3 and 4 parallel branches of 18/36/72/144
  channels (strides 4/8/16/32), each branch two BasicBlocks, then a fusion: higher resolutions reach
  lower ones through strided 3x3 conv + BN (ReLU between), lower ones reach higher ones through 1x1
  conv + BN and a bilinear upsample; the sum is followed by a ReLU per output branch (`fuse_act.<i>`);
- HRNetV2 head: every branch upsampled bilinearly to stride 4 and concatenated (270 channels, `concat`),
  a 1x1 conv + BN + ReLU (`last_layer`), a 1x1 classifier (`head`), and a bilinear upsample x4 to the
  input size.

Grad-CAM: the default layer is `last_layer` (its ReLU); only the 1x1 `head` and the final upsample lie
between it and the logits. `gradcam_layers` also names the stem, the highest-resolution fused output of
each stage (`stage2.0.fuse_act.0`, `stage3.2.fuse_act.0`, `stage4.1.fuse_act.0`) and `concat`. Grad-CAM's
class score is the softmax over classes summed over pixels (`bench.gradcam.method.class_scores`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.models import register_model

WIDTHS = (18, 36, 72, 144)
STAGE_MODULES = (1, 3, 2)  # multi-resolution modules in stages 2, 3 and 4 (v2; v1 has 1, 1, 1)
BLOCKS_PER_BRANCH = 2
STEM_CHANNELS = 64


def _init_weights(model: nn.Module) -> None:
    """He initialization (fan-in, ReLU) for convs, unit BN, and a zero scale on the last BN of every
    residual block (Goyal et al. 2017, torchvision's `zero_init_residual`): each block starts as the
    identity. Without it the sums of residual adds and four-way fusions grow the eval-mode logits of a
    random network to ~1e4, which no numerical comparison of the deployed graphs could use."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, (BasicBlock, Bottleneck)):
            nn.init.zeros_(m.last_bn.weight)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(*conv_bn(cin, cout, kernel, stride), nn.ReLU())


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(channels, channels, 3)
        self.conv2 = nn.Sequential(*conv_bn(channels, channels, 3))
        self.act = nn.ReLU()

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.conv2[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.convs = nn.Sequential(ConvBNReLU(cin, planes, 1), ConvBNReLU(planes, planes, 3), *conv_bn(planes, cout, 1))
        self.downsample = nn.Sequential(*conv_bn(cin, cout, 1)) if cin != cout else None
        self.act = nn.ReLU()

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.convs[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(self.convs(x) + identity)


class Upsample(nn.Module):
    """1x1 conv + BN, then bilinear upsampling to the target branch's size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(*conv_bn(cin, cout, 1))

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.proj(x), size=like.shape[-2:], mode="bilinear", align_corners=False)


def _downsample(cin: int, cout: int, steps: int) -> nn.Sequential:
    """`steps` stride-2 3x3 convs: the intermediate ones keep `cin` and end in ReLU, the last has no ReLU."""
    layers: list[nn.Module] = [ConvBNReLU(cin, cin, 3, 2) for _ in range(steps - 1)]
    return nn.Sequential(*layers, *conv_bn(cin, cout, 3, 2))


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all inputs brought to its resolution."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(BasicBlock(w) for _ in range(BLOCKS_PER_BRANCH))) for w in widths)
        self.fuse = nn.ModuleList()
        for i, wi in enumerate(widths):
            row = nn.ModuleList()
            for j, wj in enumerate(widths):
                row.append(Upsample(wj, wi) if j > i else nn.Identity() if j == i else _downsample(wj, wi, i - j))
            self.fuse.append(row)
        self.fuse_act = nn.ModuleList(nn.ReLU() for _ in widths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, (row, act) in enumerate(zip(self.fuse, self.fuse_act)):
            total = xs[i]
            for j, (fuse, x) in enumerate(zip(row, xs)):
                if j > i:
                    total = total + fuse(x, xs[i])
                elif j < i:
                    total = total + fuse(x)
            out.append(act(total))
        return out


class Transition(nn.Module):
    """Adapts the previous stage's branches to the next stage's widths and adds the new, lower branch."""

    def __init__(self, before: tuple[int, ...], after: tuple[int, ...]) -> None:
        super().__init__()
        self.keep = nn.ModuleList(nn.Identity() if b == a else ConvBNReLU(b, a, 3) for b, a in zip(before, after))
        self.new = ConvBNReLU(before[-1], after[-1], 3, 2)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m(x) for m, x in zip(self.keep, xs)] + [self.new(xs[-1])]


class Concat(nn.Module):
    """Every branch upsampled to the highest resolution and concatenated (HRNetV2 representation)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        size = xs[0].shape[-2:]
        ups = [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in xs[1:]]
        return torch.cat([xs[0], *ups], dim=1)


class HRNetW18Small(nn.Module):
    gradcam_layer = "last_layer"
    gradcam_layers = {
        "stem": "stem",
        "stage2": "stage2.0.fuse_act.0",
        "stage3": "stage3.2.fuse_act.0",
        "stage4": "stage4.1.fuse_act.0",
        "concat": "concat",
        "last_layer": "last_layer",
    }

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        stem, wide = STEM_CHANNELS, STEM_CHANNELS * Bottleneck.expansion
        self.stem = nn.Sequential(ConvBNReLU(in_channels, stem, 3, 2), ConvBNReLU(stem, stem, 3, 2))
        self.layer1 = nn.Sequential(Bottleneck(stem, stem), Bottleneck(wide, stem))
        self.transition1 = nn.ModuleList([ConvBNReLU(wide, WIDTHS[0], 3), ConvBNReLU(wide, WIDTHS[1], 3, 2)])
        self.stage2 = nn.ModuleList(HighResolutionModule(WIDTHS[:2]) for _ in range(STAGE_MODULES[0]))
        self.transition2 = Transition(WIDTHS[:2], WIDTHS[:3])
        self.stage3 = nn.ModuleList(HighResolutionModule(WIDTHS[:3]) for _ in range(STAGE_MODULES[1]))
        self.transition3 = Transition(WIDTHS[:3], WIDTHS)
        self.stage4 = nn.ModuleList(HighResolutionModule(WIDTHS) for _ in range(STAGE_MODULES[2]))
        self.concat = Concat()
        self.last_layer = ConvBNReLU(sum(WIDTHS), sum(WIDTHS), 1)
        self.head = nn.Conv2d(sum(WIDTHS), num_classes, 1)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer1(self.stem(x))
        xs = [t(y) for t in self.transition1]
        for module in self.stage2:
            xs = module(xs)
        xs = self.transition2(xs)
        for module in self.stage3:
            xs = module(xs)
        xs = self.transition3(xs)
        for module in self.stage4:
            xs = module(xs)
        logits = self.head(self.last_layer(self.concat(xs)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("hrnet-w18-small")
def hrnet_w18_small(in_channels: int, num_classes: int) -> HRNetW18Small:
    return HRNetW18Small(in_channels, num_classes)
