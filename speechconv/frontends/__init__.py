"""Spectrogram front-ends (log-mel, MFCC, PCEN) with offline and exact streaming computation.

``build_frontend({"name": "logmel", "n_mels": 40, ...})`` builds one from a config dict;
``frontend.config`` gives that dict back.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from speechconv.errors import ConfigError
from speechconv.frontends.base import Cache, SpectrogramFrontend, num_frames, steady_tail_length
from speechconv.frontends.logmel import LogMel
from speechconv.frontends.mfcc import MFCC
from speechconv.frontends.normalization import FeatureNormalizer
from speechconv.frontends.pcen import PCEN

FRONTENDS: dict[str, type[SpectrogramFrontend]] = {"logmel": LogMel, "mfcc": MFCC, "pcen": PCEN}


def build_frontend(config: dict[str, Any]) -> nn.Module:
    """Build a front-end from ``{"name": <one of FRONTENDS>, **constructor options}``."""
    if not isinstance(config, dict):
        raise ConfigError(f"frontend config must be a mapping, got {type(config).__name__}")
    options = dict(config)
    name = options.pop("name", None)
    if name not in FRONTENDS:
        raise ConfigError(f"unknown frontend {name!r}; choose one of {sorted(FRONTENDS)}")
    cls = FRONTENDS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"frontend {name!r}: unknown option(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(**options)


__all__ = [
    "FRONTENDS",
    "MFCC",
    "PCEN",
    "Cache",
    "FeatureNormalizer",
    "LogMel",
    "SpectrogramFrontend",
    "build_frontend",
    "num_frames",
    "steady_tail_length",
]
