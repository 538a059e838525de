"""Training with PyTorch Lightning: modules, data modules, losses and the ``speechconv train`` CLI.

The classes are imported on first use (PEP 562), so that light submodules (``keyword_recipe``,
``recipe_tools``) load without Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AudioClassifier": "speechconv.training.audio_module",
    "AudioManifestDataModule": "speechconv.training.datamodules",
    "ImageClassifier": "speechconv.training.image_module",
    "MNISTDataModule": "speechconv.training.datamodules",
    "SyntheticAudioDataModule": "speechconv.training.datamodules",
    "SyntheticImageDataModule": "speechconv.training.datamodules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'speechconv.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
