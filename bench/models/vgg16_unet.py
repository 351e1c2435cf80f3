"""U-Net with a VGG-16 encoder, as in the VGG16-UNet mammogram segmentation studies.

Encoder: Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 — VGG-16's thirteen 3x3 convs (64,64 | 128,128 | 256x3 | 512x3 | 512x3) with 2x2 max-pool
between blocks; blocks 1-4 give the skips and block 5, after the fourth pool, is the bottleneck at
stride 16. Decoder: Ronneberger, Fischer, Brox, "U-Net", MICCAI 2015 — per level a 2x2 stride-2
transposed conv, concatenation with the skip, two 3x3 conv + ReLU (512, 256, 128, 64), then a 1x1 head.

BatchNorm: yes, after every 3x3 conv (the VGG-16-BN variant, and the decoder blocks of the Keras
VGG16-UNet those studies use): this harness trains from random initialization, where thirteen plain
VGG convs train poorly, and every deployment path folds BN into the conv, so it costs nothing at
inference. `width` scales every channel count (1.0, the registered model, is the real VGG-16).

Grad-CAM: the default layer is `decoder.3` (the last decoder block, ending in a ReLU at full
resolution); only the 1x1 `head` lies between it and the logits. `gradcam_layers` also names the
deepest skip block `encoder.3`, the `bottleneck` (VGG block 5) and the first decoder block `decoder.0`.
Grad-CAM's class score is the softmax over classes summed over pixels (`bench.gradcam.method.class_scores`).
"""

from __future__ import annotations

from torch import nn

from bench.models import register_model
from bench.models.unet import UNet

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, 3x3 convs) per block


class ConvBlock(nn.Sequential):
    """`convs` x (3x3 conv + BN + ReLU); the block's output is its last ReLU."""

    def __init__(self, cin: int, cout: int, convs: int) -> None:
        layers: list[nn.Module] = []
        for i in range(convs):
            conv = nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False)
            layers += [conv, nn.BatchNorm2d(cout), nn.ReLU()]
        super().__init__(*layers)


class VGG16UNet(nn.Module):
    gradcam_layer = "decoder.3"
    gradcam_layers = {
        "encoder": "encoder.3",
        "bottleneck": "bottleneck",
        "decoder_deep": "decoder.0",
        "decoder": "decoder.3",
    }

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        blocks = [(max(1, round(c * width)), n) for c, n in VGG16_BLOCKS]
        self.encoder = nn.ModuleList()
        c = in_channels
        for channels, convs in blocks[:4]:
            self.encoder.append(ConvBlock(c, channels, convs))
            c = channels
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(c, blocks[4][0], blocks[4][1])
        c = blocks[4][0]
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip, _ in reversed(blocks[:4]):
            self.upsample.append(nn.ConvTranspose2d(c, skip, 2, stride=2))
            self.decoder.append(ConvBlock(2 * skip, skip, 2))
            c = skip
        self.head = nn.Conv2d(c, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # The same walk as the U-Net: encoder blocks with pooling, bottleneck, then upsample, concatenate
    # the skip and convolve, deepest first.
    forward = UNet.forward


@register_model("vgg16-unet")
def vgg16_unet(in_channels: int, num_classes: int) -> VGG16UNet:
    return VGG16UNet(in_channels, num_classes)
