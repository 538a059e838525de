"""Model registry: every model is a builder function registered by name and buildable from a config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import yaml
from torch import nn

from speechconv.errors import ConfigError
from speechconv.registry import accepted_options, check_options, lookup, split_config


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # "audio" or "image"
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, ...]  # one example, for inspect: (features, frames) or (C, H, W)
    description: str


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, task: str, input_shape: tuple[int, ...]):
    """Decorator: register ``builder(**kwargs) -> nn.Module`` under ``name``."""

    def decorate(builder: Callable[..., nn.Module]):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        MODELS[name] = ModelEntry(name, task, builder, tuple(input_shape), doc[0] if doc else "")
        return builder

    return decorate


def get_entry(name: str) -> ModelEntry:
    _load_all()
    return lookup(MODELS, name, "model", "`speechconv models` lists them")


def build_model(config: str | dict[str, Any]) -> nn.Module:
    """Build from a name, or a dict ``{"name": NAME, **kwargs}`` (``_target_``-free, YAML-friendly)."""
    name, config = split_config(config, "model")
    entry = get_entry(name)
    check_options(config, accepted_options(entry.builder), "model", name)
    try:
        model = entry.builder(**config)
    except TypeError as err:
        raise ConfigError(f"bad options for model {name!r}: {err}") from err
    model.config = {"name": name, **config}
    return model


def load_model_config(path: str) -> dict[str, Any]:
    """Read a YAML model config; a training config's ``model.init_args.model`` section also works."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        section = data["model"]
        section = section.get("init_args", section)
        data = section.get("model", section)
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError(f"{path}: no model config with a 'name' found")
    return data


def list_models() -> list[ModelEntry]:
    _load_all()
    return [MODELS[k] for k in sorted(MODELS)]


def _load_all() -> None:
    import speechconv.models  # noqa: F401  (imports every model module, which registers it)
