"""Training with PyTorch Lightning: modules, data modules, losses and the ``speechconv train`` CLI."""

from speechconv.training.audio_module import AudioClassifier
from speechconv.training.datamodules import (
    AudioManifestDataModule,
    MNISTDataModule,
    SyntheticAudioDataModule,
    SyntheticImageDataModule,
)
from speechconv.training.image_module import ImageClassifier

__all__ = [
    "AudioClassifier",
    "AudioManifestDataModule",
    "ImageClassifier",
    "MNISTDataModule",
    "SyntheticAudioDataModule",
    "SyntheticImageDataModule",
]
