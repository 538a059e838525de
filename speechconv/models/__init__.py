"""Model zoo. Importing this package registers every model; build one with :func:`build_model`."""

from speechconv.models import (
    alexnet,  # noqa: F401
    cnn_trad_fpool3,  # noqa: F401
    ds_cnn,  # noqa: F401
    freq_cnn,  # noqa: F401
    googlenet,  # noqa: F401
    lenet5,  # noqa: F401
    mlp_scan,  # noqa: F401
    neocognitron,  # noqa: F401
    resnet,  # noqa: F401
    tc_resnet,  # noqa: F401
    tdnn,  # noqa: F401
    vgg,  # noqa: F401
    zfnet,  # noqa: F401
)
from speechconv.models.registry import MODELS, build_model, get_entry, list_models, register_model

__all__ = ["MODELS", "build_model", "get_entry", "list_models", "register_model"]
