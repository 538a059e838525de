"""Model zoo. Importing this package registers every model (the audio models here, the image models of
:mod:`speechconv.vision.models`); build one with :func:`build_model`."""

from speechconv.models import (
    cnn_trad_fpool3,  # noqa: F401
    ds_cnn,  # noqa: F401
    ensemble,  # noqa: F401
    freq_cnn,  # noqa: F401
    mlp_scan,  # noqa: F401
    tc_resnet,  # noqa: F401
    tdnn,  # noqa: F401
)
from speechconv.models.registry import MODELS, build_model, get_entry, list_models, register_model
from speechconv.vision import models as _vision_models  # noqa: F401,E402  (registers the image models)

__all__ = ["MODELS", "build_model", "get_entry", "list_models", "register_model"]
