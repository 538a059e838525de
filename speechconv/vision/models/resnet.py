"""ResNet (He et al. 2016, "Deep residual learning for image recognition") built from
:class:`~speechconv.blocks.Residual` units with batch norm.

Basic block: 3x3 conv (stride s) - BN - ReLU - 3x3 conv - BN, added to the shortcut, then ReLU.
Bottleneck block: 1x1 reduce - 3x3 (stride s) - 1x1 expand x4, each with BN (stride on the 3x3 as in
torchvision's "v1.5"). The shortcut is the identity, or a 1x1 projection with BN when the shape changes
(option B). ``resnet18``/``resnet34``/``resnet50`` match torchvision (11,689,512 / 21,797,672 /
25,557,032 parameters); ``resnet_small`` is the paper's CIFAR network (section 4.2) of depth 6n+2 for
32x32 images (16-32-64 channels, ResNet-20 by default).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from speechconv.blocks import ConvPool2d, Dense, Residual, StreamingSequential
from speechconv.errors import ConfigError
from speechconv.models.registry import register_model
from speechconv.vision.blocks.spatial import GlobalAvgPool, Pool2d
from speechconv.vision.models.image_base import ImageModel


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, activation: str | None = "relu"):
    return ConvPool2d(in_channels, out_channels, kernel, stride, padding="same", batch_norm=True,
                      activation=activation)


def projection(in_channels: int, out_channels: int, stride: int) -> ConvPool2d | None:
    """1x1 convolution + BN shortcut when the block changes shape; None (identity) otherwise."""
    if stride == 1 and in_channels == out_channels:
        return None
    return conv_bn(in_channels, out_channels, 1, stride, activation=None)


class BasicBlock(Residual):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        body = StreamingSequential(conv_bn(in_channels, planes, 3, stride), conv_bn(planes, planes, 3, activation=None))
        super().__init__(body, projection(in_channels, planes, stride), "relu")


class Bottleneck(Residual):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        out = planes * self.expansion
        body = StreamingSequential(
            conv_bn(in_channels, planes, 1),
            conv_bn(planes, planes, 3, stride),
            conv_bn(planes, out, 1, activation=None),
        )
        super().__init__(body, projection(in_channels, out, stride), "relu")


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(ImageModel):
    """Stem, stages of residual blocks (the first block of stage i > 0 halves the resolution), global
    average pooling and a linear classifier."""

    def __init__(self, block: str, stage_blocks: Sequence[int], widths: Sequence[int], stem: Sequence[nn.Module],
                 stem_channels: int, num_classes: int = 1000, zero_init_residual: bool = False):
        super().__init__()
        if block not in BLOCKS:
            raise ConfigError(f"ResNet block must be one of {sorted(BLOCKS)}, not {block!r}")
        if len(stage_blocks) != len(widths):
            raise ConfigError(f"ResNet needs one width per stage: {list(stage_blocks)} vs {list(widths)}")
        block_cls = BLOCKS[block]
        layers = list(stem)
        channels = stem_channels
        for stage, (count, planes) in enumerate(zip(stage_blocks, widths)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(block_cls(channels, planes, stride))
                channels = planes * block_cls.expansion
        self.features = StreamingSequential(*layers)
        self.classifier = StreamingSequential(GlobalAvgPool(), Dense(channels, num_classes, activation=None))
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """As torchvision: He (fan-out) convolutions, batch norm 1/0; optionally the last BN of each residual
        body starts at zero so every block starts as the identity (Goyal et al. 2017)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Residual):
                    nn.init.zeros_(m.body[-1].norm.weight)


def imagenet_stem(in_channels: int) -> list[nn.Module]:
    """7x7/2 convolution (64) + BN + ReLU, then 3x3/2 max pooling with padding 1: 224 -> 112 -> 56."""
    return [conv_bn(in_channels, 64, 7, 2), Pool2d("max", 3, 2, padding=1)]


def _full(block: str, stage_blocks: Sequence[int], num_classes: int, in_channels: int, zero_init_residual: bool):
    return ResNet(block, stage_blocks, (64, 128, 256, 512), imagenet_stem(in_channels), 64, num_classes,
                  zero_init_residual)


@register_model("resnet_small", "image", (3, 32, 32))
def resnet_small(num_classes: int = 10, in_channels: int = 3, depth: int = 20,
                 zero_init_residual: bool = False) -> ResNet:
    """CIFAR ResNet (He et al. section 4.2) for 32x32 images: depth 6n+2, basic blocks 16-32-64."""
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"resnet_small depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110), not {depth}")
    n = (depth - 2) // 6
    return ResNet("basic", (n, n, n), (16, 32, 64), [conv_bn(in_channels, 16, 3)], 16, num_classes,
                  zero_init_residual)


@register_model("resnet18", "image", (3, 224, 224))
def resnet18(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 at 224x224 (basic blocks 2-2-2-2): 11,689,512 parameters."""
    return _full("basic", (2, 2, 2, 2), num_classes, in_channels, zero_init_residual)


@register_model("resnet34", "image", (3, 224, 224))
def resnet34(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> ResNet:
    """ResNet-34 at 224x224 (basic blocks 3-4-6-3): 21,797,672 parameters."""
    return _full("basic", (3, 4, 6, 3), num_classes, in_channels, zero_init_residual)


@register_model("resnet50", "image", (3, 224, 224))
def resnet50(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 at 224x224 (bottleneck blocks 3-4-6-3): 25,557,032 parameters."""
    return _full("bottleneck", (3, 4, 6, 3), num_classes, in_channels, zero_init_residual)
