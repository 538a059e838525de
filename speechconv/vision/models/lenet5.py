"""LeNet-5 (LeCun et al. 1998) in its common modern form, built from the shared blocks.

32x32 input; C1: 6 filters 5x5, valid; S2: 2x2 max pool, stride 2; C3: 16 filters 5x5; S4: pool;
fully connected 120-84-10. 61,706 parameters. Unlike the 1998 paper: ReLU instead of scaled tanh, max
pooling instead of trainable subsampling, every C3 map sees all S2 maps, and a linear output instead of RBF units.
"""

from __future__ import annotations

from speechconv.blocks import ConvPool2d, Dense, StreamingSequential
from speechconv.models.registry import register_model
from speechconv.vision.models.image_base import ImageModel


class LeNet5(ImageModel):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu", pool: str = "max",
                 conv_impl: str = "direct"):
        super().__init__()
        conv = dict(padding="valid", activation=activation, pool=pool, pool_size=2, conv_impl=conv_impl)
        self.features = StreamingSequential(
            ConvPool2d(in_channels, 6, 5, **conv),
            ConvPool2d(6, 16, 5, **conv),
        )
        self.classifier = StreamingSequential(
            Dense(16 * 5 * 5, 120, activation),
            Dense(120, 84, activation),
            Dense(84, num_classes, activation=None),
        )


@register_model("lenet5", "image", (1, 32, 32))
def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 for 32x32 grey images (MNIST padded by 2): 6@5x5, pool, 16@5x5, pool, dense 120-84-10, ReLU."""
    return LeNet5(**kwargs)
