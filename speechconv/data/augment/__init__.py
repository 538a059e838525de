"""On-the-fly waveform augmentation, seeded and built from config.

Every op is a small class: keyword-only parameters with defaults (ranges as ``(lo, hi)``), an
application probability ``p``, and ``__call__(wave, generator) -> wave``. ``wave`` is a float
tensor with time on the last axis (mono ``(T,)``; leading dims share one random draw). All
randomness comes from the passed ``torch.Generator``; DataLoader workers build it with
``make_generator(base_seed, epoch, index)`` so an example's augmentation is reproducible no
matter which worker handles it.

Each op splits into ``sample_params(generator, wave) -> dict`` (all random draws) and
``apply(wave, **params)`` (deterministic), so tests and tools can apply exact parameters.

``build_augment`` turns config such as::

    [{"name": "noise", "noise_dir": "data/noise", "snr_db": [0, 20], "p": 0.8},
     {"name": "speed", "factors": [0.9, 1.1], "p": 0.5}]

into a ``Compose`` chain; ``AUGMENTATIONS`` maps config names to classes. Modules: ``sampling`` (seeded
draws), ``dsp`` (pure signal functions), ``base`` (the op protocol and chains), ``ops``, ``noise``,
``registry`` (config names and builders); the channel ops are in :mod:`speechconv.data.channel`. Feature-level ops
(``SpecAugment``, ``VTLP``) live in ``speechconv.data.specaugment``; build them with
``build_feature_augment``.
"""

from __future__ import annotations

from speechconv.data.augment.base import Compose, WaveAugment
from speechconv.data.augment.dsp import butterworth_qs, mix_at_snr, signal_power
from speechconv.data.augment.noise import AUDIO_SUFFIXES, AddNoise
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
from speechconv.data.augment.registry import (
    AUGMENTATIONS,
    FEATURE_AUGMENTATIONS,
    build_augment,
    build_feature_augment,
)
from speechconv.data.augment.sampling import make_generator
from speechconv.data.specaugment import VTLP, SpecAugment

__all__ = [
    "AUDIO_SUFFIXES",
    "AUGMENTATIONS",
    "FEATURE_AUGMENTATIONS",
    "AddNoise",
    "Compose",
    "FormantShift",
    "Gain",
    "PitchShift",
    "Reverb",
    "SpecAugment",
    "SpeedPerturb",
    "TempoPerturb",
    "TelephoneBand",
    "TimeShift",
    "VTLP",
    "WaveAugment",
    "build_augment",
    "build_feature_augment",
    "butterworth_qs",
    "make_generator",
    "mix_at_snr",
    "signal_power",
]
