"""Image models; importing this package registers them in :mod:`speechconv.models`' registry."""

from speechconv.vision.models import (
    alexnet,  # noqa: F401
    googlenet,  # noqa: F401
    lenet5,  # noqa: F401
    neocognitron,  # noqa: F401
    resnet,  # noqa: F401
    vgg,  # noqa: F401
    zfnet,  # noqa: F401
)
