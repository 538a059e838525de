"""Config names of the ops and building chains from config (:func:`build_augment`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from speechconv.data.augment.base import Compose, WaveAugment
from speechconv.data.augment.noise import AddNoise
from speechconv.data.augment.ops import (
    FormantShift,
    Gain,
    PitchShift,
    Reverb,
    SpeedPerturb,
    TelephoneBand,
    TempoPerturb,
    TimeShift,
)
from speechconv.data.specaugment import VTLP, SpecAugment
from speechconv.errors import ConfigError
from speechconv.registry import accepted_options, check_options, lookup, split_config

AUGMENTATIONS: dict[str, type[WaveAugment]] = {
    cls.name: cls
    for cls in (AddNoise, TimeShift, SpeedPerturb, TempoPerturb, PitchShift, FormantShift, Gain, Reverb, TelephoneBand)
}
FEATURE_AUGMENTATIONS: dict[str, type] = {"specaugment": SpecAugment, "vtlp": VTLP}


def _build_op(spec: Mapping[str, Any], registry: Mapping[str, type], defaults: Mapping[str, Any]):
    name, kwargs = split_config(spec, "augmentation")
    cls = lookup(registry, name, "augmentation")
    accepted = accepted_options(cls.__init__) or set()
    check_options(kwargs, accepted, "augmentation", name)
    for key, value in defaults.items():
        if key in accepted:
            kwargs.setdefault(key, value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"augmentation {name!r}: {err}") from err


def _entries(config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> list:
    if config is None:
        return []
    if isinstance(config, Mapping):
        return list(config["ops"]) if "ops" in config else [config]
    return list(config)


def build_augment(
    config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None, sample_rate: int = 16000
) -> Compose:
    """Waveform chain from config: a list of ``{"name": ..., **options}``, one such mapping, or
    ``{"ops": [...]}``. ``sample_rate`` is passed to every op that takes one, unless set."""
    from speechconv.data.channel import CHANNEL_AUGMENTATIONS  # channel ops build on this module

    registry = {**AUGMENTATIONS, **CHANNEL_AUGMENTATIONS}
    return Compose([_build_op(e, registry, {"sample_rate": sample_rate}) for e in _entries(config)])


def build_feature_augment(config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> Compose:
    """Spectrogram chain (``specaugment``, ``vtlp``) from config in the same format."""
    return Compose([_build_op(e, FEATURE_AUGMENTATIONS, {}) for e in _entries(config)])
