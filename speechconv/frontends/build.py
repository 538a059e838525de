"""Building a front-end by name from a config dict, and the registry of names."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from speechconv.errors import ConfigError
from speechconv.frontends.base import SpectrogramFrontend
from speechconv.frontends.ensemble import EnsembleFrontend
from speechconv.frontends.logmel import LogMel
from speechconv.frontends.mfcc import MFCC
from speechconv.frontends.pcen import PCEN
from speechconv.registry import accepted_options, check_options, lookup, split_config

FRONTENDS: dict[str, type[SpectrogramFrontend]] = {"logmel": LogMel, "mfcc": MFCC, "pcen": PCEN,
                                                   "ensemble": EnsembleFrontend}
#: The front-end of a model built by name (viz, feature statistics): 40 log-mels, 25 ms / 10 ms at 16 kHz.
DEFAULT_FRONTEND: dict[str, Any] = {"name": "logmel", "sample_rate": 16000, "n_fft": 400, "hop_length": 160,
                                    "n_mels": 40}


def build_frontend(config: dict[str, Any]) -> nn.Module:
    """Build a front-end from ``{"name": <one of FRONTENDS>, **constructor options}``; the common spectrogram
    options of :class:`SpectrogramFrontend` are accepted by every front-end."""
    if not isinstance(config, dict):
        raise ConfigError(f"frontend config must be a mapping, got {type(config).__name__}")
    name, options = split_config(config, "frontend")
    cls = lookup(FRONTENDS, name, "frontend", "choose one of")
    common = set(inspect.signature(SpectrogramFrontend.__init__).parameters) - {"self", "n_features"}
    check_options(options, accepted_options(cls.__init__, common), "frontend", name)
    return cls(**options)
