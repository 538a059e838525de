"""VGG (Simonyan & Zisserman 2015): stacks of 3x3 'same' convolutions, each stack closed by 2x2/2 max
pooling, then 4096-4096-classes fully connected layers. The pool is fused into the last conv-pool block of
each stack. ``vgg16`` is configuration D (138,357,544 parameters, as torchvision's ``vgg16``);
``vgg_small`` is a three-stack variant for 32x32 images.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from speechconv.blocks import ConvPool2d, Dense, StreamingSequential
from speechconv.errors import ConfigError
from speechconv.models.registry import register_model
from speechconv.vision.blocks.spatial import AdaptiveAvgPool2d
from speechconv.vision.models.image_base import ImageModel

# Channel counts of the 3x3 convolutions; "M" closes a stack with 2x2/2 max pooling (paper Table 1).
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG-16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],  # VGG-19
    "small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
}
DEPTHS = {11: "A", 13: "B", 16: "D", 19: "E"}


def vgg_features(config: Sequence[int | str], in_channels: int = 3, batch_norm: bool = False) -> list[ConvPool2d]:
    """One conv-pool block per convolution; an "M" turns on 2x2/2 max pooling in the block before it."""
    blocks: list[ConvPool2d] = []
    channels = in_channels
    for i, item in enumerate(config):
        if item == "M":
            continue
        pooled = i + 1 < len(config) and config[i + 1] == "M"
        pool = dict(pool="max", pool_size=2) if pooled else {}
        blocks.append(ConvPool2d(channels, int(item), 3, padding="same", batch_norm=batch_norm, **pool))
        channels = int(item)
    return blocks


class VGG(ImageModel):
    def __init__(self, config: Sequence[int | str] = CONFIGS["D"], num_classes: int = 1000, in_channels: int = 3,
                 batch_norm: bool = False, hidden: int = 4096, pooled_size: int | None = 7, dropout: float = 0.5,
                 image_size: int = 224):
        super().__init__()
        self.features = StreamingSequential(*vgg_features(config, in_channels, batch_norm))
        channels, height, width = self.features.output_shape((in_channels, image_size, image_size))
        head = []
        if pooled_size is not None:  # torchvision's adaptive pooling: other input sizes still give 7x7
            head.append(AdaptiveAvgPool2d(pooled_size))
            height = width = pooled_size
        self.classifier = StreamingSequential(
            *head,
            Dense(channels * height * width, hidden, "relu", dropout),
            Dense(hidden, hidden, "relu", dropout),
            Dense(hidden, num_classes, activation=None),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """As torchvision: He (fan-out) convolutions, N(0, 0.01) linear layers, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


@register_model("vgg_small", "image", (3, 32, 32))
def vgg_small(num_classes: int = 10, in_channels: int = 3, batch_norm: bool = True, hidden: int = 256,
              dropout: float = 0.5) -> VGG:
    """Small VGG for 32x32 images: 3x3 convolutions 32,32 | 64,64 | 128,128 with 2x2 pools, batch norm."""
    return VGG(CONFIGS["small"], num_classes, in_channels, batch_norm, hidden, None, dropout, image_size=32)


@register_model("vgg16", "image", (3, 224, 224))
def vgg16(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False, dropout: float = 0.5,
          depth: int = 16) -> VGG:
    """VGG-16 (configuration D) at 224x224: 138,357,544 parameters; depth=11, 13 or 19 gives A, B or E."""
    if depth not in DEPTHS:
        raise ConfigError(f"VGG depth must be one of {sorted(DEPTHS)}, not {depth}")
    return VGG(CONFIGS[DEPTHS[depth]], num_classes, in_channels, batch_norm, dropout=dropout)
