"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) in the single-tower form of torchvision ("one weird trick",
Krizhevsky 2014): five convolutions (11x11/4, 5x5, 3x3 x3) with overlapping 3x3/2 max pooling after the
1st, 2nd and 5th, then three fully connected layers with dropout. 61,100,840 parameters at 224x224.

``alexnet`` is a small variant for 32x32 images with the same layout (5x5, 5x5, 3x3 x3, overlapping pools).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from speechconv.blocks import Dense, StreamingSequential
from speechconv.models.registry import register_model
from speechconv.vision.blocks.spatial import AdaptiveAvgPool2d, padded_conv2d
from speechconv.vision.models.image_base import ImageModel


class ConvSpec(NamedTuple):
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: bool = False  # 3x3 max pooling with stride 2 after the convolution


FULL_CONVS = (
    ConvSpec(64, 11, 4, 2, True),
    ConvSpec(192, 5, 1, 2, True),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(256, 3, 1, 1),
    ConvSpec(256, 3, 1, 1, True),
)
SMALL_CONVS = (
    ConvSpec(32, 5, 1, 2, True),
    ConvSpec(64, 5, 1, 2, True),
    ConvSpec(96, 3, 1, 1),
    ConvSpec(96, 3, 1, 1),
    ConvSpec(64, 3, 1, 1, True),
)


class AlexNet(ImageModel):
    """Conv-pool feature extractor from ``convs``, average pooling to ``pooled_size``, then
    ``hidden`` -> ``hidden`` -> ``num_classes`` fully connected layers (dropout after the hidden ones)."""

    def __init__(self, convs: Sequence[ConvSpec] = FULL_CONVS, num_classes: int = 1000, in_channels: int = 3,
                 hidden: int = 4096, pooled_size: int = 6, dropout: float = 0.5, pool_size: int = 3,
                 pool_stride: int = 2):
        super().__init__()
        layers = []
        channels = in_channels
        for spec in convs:
            pool = dict(pool="max", pool_size=pool_size, pool_stride=pool_stride) if spec.pool else {}
            layers += padded_conv2d(channels, spec.channels, spec.kernel, spec.padding, stride=spec.stride, **pool)
            channels = spec.channels
        self.features = StreamingSequential(*layers)
        self.classifier = StreamingSequential(
            AdaptiveAvgPool2d(pooled_size),
            Dense(channels * pooled_size**2, hidden, "relu", dropout),
            Dense(hidden, hidden, "relu", dropout),
            Dense(hidden, num_classes, activation=None),
        )


@register_model("alexnet", "image", (3, 32, 32))
def alexnet(num_classes: int = 10, in_channels: int = 3, hidden: int = 256, dropout: float = 0.5) -> AlexNet:
    """Small AlexNet for 32x32 images: 5x5, 5x5, 3x3 x3 convolutions (32-64-96-96-64), 3x3/2 pools."""
    return AlexNet(SMALL_CONVS, num_classes, in_channels, hidden, pooled_size=3, dropout=dropout)


@register_model("alexnet_full", "image", (3, 224, 224))
def alexnet_full(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> AlexNet:
    """AlexNet at 224x224, single-tower torchvision form: 61,100,840 parameters."""
    return AlexNet(FULL_CONVS, num_classes, in_channels, 4096, pooled_size=6, dropout=dropout)
