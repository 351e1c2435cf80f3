"""SegFormer-B0 from Hugging Face `transformers` (optional: `pip install 'segbench[transformers]'`).

Xie, Wang, Yu, Anandkumar, Alvarez, Luo, "SegFormer: Simple and Efficient Design for Semantic
Segmentation with Transformers", NeurIPS 2021. Built with `transformers.SegformerForSemanticSegmentation`
from a `SegformerConfig` with the published MiT-b0 hyper-parameters: hidden sizes 32/64/160/256, depths
2/2/2/2, heads 1/2/5/8, spatial-reduction ratios 8/4/2/1, overlapping patch embeddings 7/3/3/3 at strides
4/2/2/2, Mix-FFN ratio 4, and the all-MLP decoder at 256 channels (3.7 M parameters). Random init: no
ImageNet weights can be downloaded, so it trains from scratch like the rest of the zoo.

The decoder's logits are at H/4 x W/4; `HuggingFaceSegmenter` upsamples them to the input size as the
model's post-processing does (bilinear, `align_corners=False`). Grad-CAM: the default layer is
`model.decode_head.activation`, the fused decoder features after BN + ReLU (256 channels at stride 4),
only a 1x1 classifier and the upsample away from the logits; the encoder's stages are named too.
"""

from __future__ import annotations

from bench.models import register_model
from bench.models.huggingface import HuggingFaceSegmenter, require_transformers


@register_model("segformer-b0")
def segformer_b0(in_channels: int, num_classes: int) -> HuggingFaceSegmenter:
    transformers = require_transformers("model 'segformer-b0'")
    config = transformers.SegformerConfig(
        num_channels=in_channels,
        num_labels=num_classes,
        hidden_sizes=[32, 64, 160, 256],
        depths=[2, 2, 2, 2],
        num_attention_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=256,
    )
    return HuggingFaceSegmenter(transformers.SegformerForSemanticSegmentation(config)).eval()
