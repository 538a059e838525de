"""GoogLeNet (Szegedy et al. 2015, "Going deeper with convolutions") built from inception blocks.

Each inception block runs four branches on the same input and concatenates them on the channel axis
(:class:`~speechconv.blocks.Parallel`): a 1x1 convolution; 1x1 reduction then 3x3; 1x1 reduction then a
second "5x5" convolution; 3x3/1 max pooling then a 1x1 projection. Every convolution is followed by batch
norm (eps 1e-3) and ReLU, as in torchvision's version. ``googlenet`` matches torchvision's
``googlenet(aux_logits=False)``: 6,624,904 parameters. Like torchvision it uses a 3x3 kernel in the
"5x5" branch (a known torchvision deviation kept for weight compatibility); ``wide_kernel=5`` gives the
paper's 5x5. The auxiliary classifiers (training-only) are not built.

``googlenet_small`` is a four-inception-block variant for 32x32 images.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from torch import nn

from speechconv.blocks import ConvPool2d, Dense, Parallel, StreamingSequential
from speechconv.models.registry import register_model
from speechconv.vision.blocks.spatial import GlobalAvgPool, Pool2d
from speechconv.vision.models.image_base import ImageModel

BN_EPS = 1e-3


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> ConvPool2d:
    """Convolution without bias + batch norm + ReLU, 'same' padding."""
    block = ConvPool2d(in_channels, out_channels, kernel, stride, padding="same", batch_norm=True)
    block.norm.eps = BN_EPS
    return block


class InceptionSpec(NamedTuple):
    """Output channels of the four branches and the widths of the two reductions (paper Table 1)."""

    c1x1: int
    reduce3x3: int
    c3x3: int
    reduce_wide: int
    c_wide: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.c1x1 + self.c3x3 + self.c_wide + self.pool_proj


class Inception(Parallel):
    def __init__(self, in_channels: int, spec: InceptionSpec, wide_kernel: int = 3):
        super().__init__(
            conv_bn(in_channels, spec.c1x1, 1),
            StreamingSequential(conv_bn(in_channels, spec.reduce3x3, 1), conv_bn(spec.reduce3x3, spec.c3x3, 3)),
            StreamingSequential(conv_bn(in_channels, spec.reduce_wide, 1),
                                conv_bn(spec.reduce_wide, spec.c_wide, wide_kernel)),
            StreamingSequential(Pool2d("max", 3, 1, padding=1, ceil_mode=True),
                                conv_bn(in_channels, spec.pool_proj, 1)),
        )


# "M": 3x3/2 max pool (ceil mode); "M2": 2x2/2 max pool (ceil mode), torchvision's maxpool4.
FULL_BLOCKS: tuple = (
    "M",
    InceptionSpec(64, 96, 128, 16, 32, 32), InceptionSpec(128, 128, 192, 32, 96, 64),  # 3a, 3b
    "M",
    InceptionSpec(192, 96, 208, 16, 48, 64), InceptionSpec(160, 112, 224, 24, 64, 64),  # 4a, 4b
    InceptionSpec(128, 128, 256, 24, 64, 64), InceptionSpec(112, 144, 288, 32, 64, 64),  # 4c, 4d
    InceptionSpec(256, 160, 320, 32, 128, 128),  # 4e
    "M2",
    InceptionSpec(256, 160, 320, 32, 128, 128), InceptionSpec(384, 192, 384, 48, 128, 128),  # 5a, 5b
)
SMALL_BLOCKS: tuple = (
    InceptionSpec(16, 24, 32, 4, 8, 8), InceptionSpec(32, 32, 48, 8, 24, 16),
    "M",
    InceptionSpec(48, 24, 52, 4, 12, 16),
    "M",
    InceptionSpec(64, 40, 80, 8, 32, 32),
)


class GoogLeNet(ImageModel):
    """Stem, then inception blocks and pools from ``blocks``, global average pooling, dropout, linear."""

    def __init__(self, stem: Sequence[nn.Module], stem_channels: int, blocks: Sequence = FULL_BLOCKS,
                 num_classes: int = 1000, dropout: float = 0.2, wide_kernel: int = 3):
        super().__init__()
        layers = list(stem)
        channels = stem_channels
        for item in blocks:
            if item == "M":
                layers.append(Pool2d("max", 3, 2, ceil_mode=True))
            elif item == "M2":
                layers.append(Pool2d("max", 2, 2, ceil_mode=True))
            else:
                layers.append(Inception(channels, item, wide_kernel))
                channels = item.out_channels
        self.features = StreamingSequential(*layers)
        self.classifier = StreamingSequential(
            GlobalAvgPool(), nn.Dropout(dropout), Dense(channels, num_classes, activation=None)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """As torchvision: truncated N(0, 0.01) weights in [-0.02, 0.02], batch norm 1/0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2 * 0.01, b=2 * 0.01)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@register_model("googlenet_small", "image", (3, 32, 32))
def googlenet_small(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.2,
                    wide_kernel: int = 5) -> GoogLeNet:
    """Small GoogLeNet for 32x32 images: 3x3 stem (32), four inception blocks, global pooling."""
    stem = [conv_bn(in_channels, 32, 3)]
    return GoogLeNet(stem, 32, SMALL_BLOCKS, num_classes, dropout, wide_kernel)


@register_model("googlenet", "image", (3, 224, 224))
def googlenet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
              wide_kernel: int = 3) -> GoogLeNet:
    """GoogLeNet at 224x224 without auxiliary heads, torchvision layout: 6,624,904 parameters."""
    stem = [
        conv_bn(in_channels, 64, 7, stride=2),
        Pool2d("max", 3, 2, ceil_mode=True),
        conv_bn(64, 64, 1),
        conv_bn(64, 192, 3),
    ]
    return GoogLeNet(stem, 192, FULL_BLOCKS, num_classes, dropout, wide_kernel)
