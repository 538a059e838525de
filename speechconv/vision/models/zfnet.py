"""ZFNet (Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks", Fig. 3).

AlexNet with a smaller, denser first layer: 7x7 filters with stride 2 (instead of 11x11/4) and a 5x5/2
second layer. 224x224 input; 96 7x7/2 -> 110x110, 3x3/2 max pool -> 55, contrast normalisation; 256 5x5/2 ->
26, pool -> 13, normalisation; 384, 384, 256 3x3 convolutions; pool -> 6x6; 4096, 4096, 1000 fully connected
with dropout. The pools round up (``ceil_mode``), which gives the paper's 55/13/6 map sizes. 62,357,608
parameters. Not reproduced: the paper's training-time renormalisation of filters whose RMS exceeds 0.1.

``zfnet`` is a small variant for 32x32 images: 3x3 filters with stride 1 throughout.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from speechconv.blocks import Dense, StreamingSequential
from speechconv.models.registry import register_model
from speechconv.vision.blocks.spatial import LocalResponseNorm, Pool2d, padded_conv2d
from speechconv.vision.models.image_base import ImageModel


class ConvSpec(NamedTuple):
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: bool = False  # 3x3/2 max pooling (rounding up) after the convolution
    normalize: bool = False  # local contrast normalisation across feature maps after the pooling


FULL_CONVS = (
    ConvSpec(96, 7, 2, 1, pool=True, normalize=True),
    ConvSpec(256, 5, 2, 0, pool=True, normalize=True),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(384, 3, 1, 1),
    ConvSpec(256, 3, 1, 1, pool=True),
)
SMALL_CONVS = (
    ConvSpec(48, 3, 1, 1, pool=True, normalize=True),
    ConvSpec(96, 3, 1, 1, pool=True, normalize=True),
    ConvSpec(128, 3, 1, 1),
    ConvSpec(128, 3, 1, 1),
    ConvSpec(96, 3, 1, 1, pool=True),
)


class ZFNet(ImageModel):
    """Convolutions from ``convs`` with ceil-mode 3x3/2 pools and optional normalisation, then
    ``hidden`` -> ``hidden`` -> ``num_classes`` fully connected layers (dropout after the hidden ones)."""

    def __init__(self, convs: Sequence[ConvSpec] = FULL_CONVS, num_classes: int = 1000, in_channels: int = 3,
                 image_size: int = 224, hidden: int = 4096, dropout: float = 0.5, normalize: bool = True):
        super().__init__()
        layers = []
        channels = in_channels
        for spec in convs:
            layers += padded_conv2d(channels, spec.channels, spec.kernel, spec.padding, stride=spec.stride)
            if spec.pool:
                layers.append(Pool2d("max", 3, 2, ceil_mode=True))
            if spec.normalize and normalize:
                layers.append(LocalResponseNorm(5, 1e-4, 0.75, 2.0))
            channels = spec.channels
        self.features = StreamingSequential(*layers)
        flat = self.features.output_shape((in_channels, image_size, image_size))
        self.classifier = StreamingSequential(
            Dense(flat[0] * flat[1] * flat[2], hidden, "relu", dropout),
            Dense(hidden, hidden, "relu", dropout),
            Dense(hidden, num_classes, activation=None),
        )


@register_model("zfnet", "image", (3, 32, 32))
def zfnet(num_classes: int = 10, in_channels: int = 3, hidden: int = 256, dropout: float = 0.5,
          normalize: bool = True) -> ZFNet:
    """Small ZFNet for 32x32 images: five 3x3 convolutions (48-96-128-128-96), ceil 3x3/2 pools, LRN."""
    return ZFNet(SMALL_CONVS, num_classes, in_channels, 32, hidden, dropout, normalize)


@register_model("zfnet_full", "image", (3, 224, 224))
def zfnet_full(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, normalize: bool = True) -> ZFNet:
    """ZFNet at 224x224 as in Zeiler & Fergus (2013) Fig. 3: 62,357,608 parameters."""
    return ZFNet(FULL_CONVS, num_classes, in_channels, 224, 4096, dropout, normalize)
