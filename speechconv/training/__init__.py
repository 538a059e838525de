"""Training with PyTorch Lightning: modules, data modules, losses and the ``speechconv train`` CLI.

The classes are imported on first use (PEP 562), so that light submodules (``keyword_recipe``,
``recipe_tools``) load without Lightning.
"""

from __future__ import annotations

from speechconv.lazy import lazy_names

_EXPORTS = {
    "AudioClassifier": "speechconv.training.audio_module",
    "AudioManifestDataModule": "speechconv.training.datamodules",
    "ImageClassifier": "speechconv.training.image_module",
    "MNISTDataModule": "speechconv.training.datamodules",
    "SyntheticAudioDataModule": "speechconv.training.datamodules",
    "SyntheticImageDataModule": "speechconv.training.datamodules",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
