"""LightningDataModules: audio manifests, MNIST, and synthetic audio/image data for smoke tests, one module
per kind (``audio``, ``image``, ``synthetic_audio``; ``loaders`` holds the seeded sampling they share).

Audio batches are dicts: ``wave`` (B, samples), ``label`` (B,), ``start``/``end`` (B,) sample indices of
the labelled event inside the clip (the whole clip when unknown). Image batches are ``(images, labels)``.
Training examples are drawn through :class:`~speechconv.training.sampling.EpochSampler`, so their
augmentation is seeded from ``(seed, epoch, index)`` and reproducible across workers and resumes.
"""

from speechconv.training.datamodules.audio import AudioClipDataset, AudioManifestDataModule, place_clip, speech_end
from speechconv.training.datamodules.image import (
    MNIST_MEAN,
    MNIST_STD,
    ImageTensorDataset,
    MNISTDataModule,
    SyntheticImageDataModule,
    synthetic_images,
)
from speechconv.training.datamodules.synthetic_audio import (
    SyntheticAudioDataModule,
    SyntheticAudioDataset,
    synthetic_clip,
)

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "AudioClipDataset",
    "AudioManifestDataModule",
    "ImageTensorDataset",
    "MNISTDataModule",
    "SyntheticAudioDataModule",
    "SyntheticAudioDataset",
    "SyntheticImageDataModule",
    "place_clip",
    "speech_end",
    "synthetic_clip",
    "synthetic_images",
]
