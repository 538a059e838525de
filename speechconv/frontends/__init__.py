"""Spectrogram front-ends (log-mel, MFCC, PCEN) with offline and exact streaming computation, and Whisper's
front-end and encoder (:mod:`.whisper`, numpy and CTranslate2: no torch).

``build_frontend({"name": "logmel", "n_mels": 40, ...})`` builds one from a config dict;
``frontend.config`` gives that dict back. Names are imported on first use, so that the whisper engine
(:mod:`speechconv.runtime.whisper_engine`) runs without torch.
"""

from __future__ import annotations

from speechconv.lazy import lazy_names

_WHERE = {
    "DEFAULT_FRONTEND": "build",
    "FRONTENDS": "build",
    "build_frontend": "build",
    "EnsembleFrontend": "ensemble",
    "MFCC": "mfcc",
    "PCEN": "pcen",
    "State": "base",
    "SpectrogramFrontend": "base",
    "FeatureNormalizer": "normalization",
    "LogMel": "logmel",
    "num_frames": "functional",
    "steady_tail_length": "functional",
}
__all__ = [
    "DEFAULT_FRONTEND",
    "EnsembleFrontend",
    "FRONTENDS",
    "MFCC",
    "PCEN",
    "State",
    "FeatureNormalizer",
    "LogMel",
    "SpectrogramFrontend",
    "build_frontend",
    "num_frames",
    "steady_tail_length",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
