"""Model zoo. Importing this package registers every model; build one with :func:`build_model`."""

from speechconv.models import lenet5  # noqa: F401
from speechconv.models.registry import MODELS, build_model, get_entry, list_models, register_model

__all__ = ["MODELS", "build_model", "get_entry", "list_models", "register_model"]
