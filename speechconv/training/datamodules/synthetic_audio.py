"""Synthetic audio (tones, chirps, noise) for smoke tests of audio configs."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from speechconv.data.augment import build_augment, make_generator
from speechconv.training.datamodules.loaders import _LoaderMixin, _split_key


def synthetic_clip(label: int, sample_rate: int, length: int, generator: torch.Generator,
                   snr_db: float = 10.0) -> tuple[torch.Tensor, int, int]:
    """One generated clip: class 0 is noise only; class ``k >= 1`` adds a 0.15-0.35 s event, a steady tone
    (odd ``k``) or an upward chirp (even ``k``) starting at ``250 * (k + 1)`` Hz. Returns (wave, start, end)."""
    noise = torch.randn(length, generator=generator) * 0.05
    if label == 0:
        return noise, 0, length
    duration = int(sample_rate * (0.15 + 0.2 * float(torch.rand((), generator=generator))))
    duration = min(duration, length)
    start = int(torch.randint(0, length - duration + 1, (), generator=generator))
    t = torch.arange(duration, dtype=torch.float32) / sample_rate
    f0 = 250.0 * (label + 1)
    if label % 2 == 1:
        phase = 2 * math.pi * f0 * t
    else:  # linear chirp f0 -> 2 f0 over the event
        rate = f0 / max(t[-1].item(), 1e-3)
        phase = 2 * math.pi * (f0 * t + 0.5 * rate * t * t)
    amplitude = 0.05 * 10 ** (snr_db / 20) * math.sqrt(2)
    event = amplitude * torch.sin(phase) * torch.hann_window(duration, periodic=False)
    wave = noise.clone()
    wave[start: start + duration] += event
    return wave, start, start + duration


class SyntheticAudioDataset(Dataset):
    """Deterministic generated clips (:func:`synthetic_clip`); labels cycle over the classes."""

    def __init__(self, n: int, num_classes: int, sample_rate: int, clip_seconds: float, seed: int,
                 augment=None):
        self.n, self.num_classes, self.sample_rate = n, num_classes, sample_rate
        self.length = int(round(clip_seconds * sample_rate))
        self.seed, self.augment = seed, augment

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, index = _split_key(key)
        label = index % self.num_classes
        wave, start, end = synthetic_clip(label, self.sample_rate, self.length,
                                          torch.Generator().manual_seed(self.seed * 1_000_003 + index))
        if self.augment is not None and epoch is not None:
            wave = self.augment(wave, make_generator(self.seed, epoch, index))
            wave = F.pad(wave, (0, max(0, self.length - len(wave))))[: self.length]
        return {"wave": wave, "label": torch.tensor(label), "start": torch.tensor(start), "end": torch.tensor(end)}


class SyntheticAudioDataModule(_LoaderMixin, pl.LightningDataModule):
    """Tones vs chirps vs noise (:func:`synthetic_clip`) with any label names, for smoke tests of configs.

    Label ``i`` of ``labels`` gets generated class ``i`` (class 0 = noise only, so put the background
    label first). Unknown options are refused (a mistyped key is an error, not silently dropped).
    """

    def __init__(self, labels: list[str] | None = None, sample_rate: int = 16000, clip_seconds: float = 0.5,
                 n_train: int = 32, n_val: int = 16, n_test: int = 16, batch_size: int = 8, num_workers: int = 0,
                 augment: list[dict] | dict | None = None, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.labels = list(labels or ["_background_", "tone", "chirp"])
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        augment_fn = build_augment(augment, sample_rate) if augment else None
        make = lambda n, s, a=None: SyntheticAudioDataset(n, len(self.labels), sample_rate,  # noqa: E731
                                                          clip_seconds, s, a)
        self.train_set = make(n_train, seed, augment_fn)
        self.val_set = make(n_val, seed + 1)
        self.test_set = make(n_test, seed + 2)
