"""LightningDataModules: audio manifests, MNIST, and synthetic audio/image data for smoke tests.

Audio batches are dicts: ``wave`` (B, samples), ``label`` (B,), ``start``/``end`` (B,) sample indices of
the labelled event inside the clip (the whole clip when unknown). Image batches are ``(images, labels)``.
Training examples are drawn through :class:`~speechconv.training.sampling.EpochSampler`, so their
augmentation is seeded from ``(seed, epoch, index)`` and reproducible across workers and resumes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from speechconv.data.augment import build_augment, make_generator
from speechconv.errors import ConfigError
from speechconv.training.sampling import EpochSampler, ResumableDataLoader

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _split_key(key: int | tuple[int, int]) -> tuple[int | None, int]:
    """Sampler keys are ``(epoch, index)`` when training, plain indices otherwise."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return None, int(key)


class _LoaderMixin:
    """Shared dataloader construction for the data modules below."""

    batch_size: int
    num_workers: int
    seed: int

    def _train_loader(self, dataset: Dataset) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        replicas = trainer.world_size if trainer is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        epoch_fn = (lambda: trainer.current_epoch) if trainer is not None else None
        sampler = EpochSampler(dataset, shuffle=True, seed=self.seed, num_replicas=replicas, rank=rank,
                               epoch_fn=epoch_fn)
        return ResumableDataLoader(dataset, sampler, batch_size=self.batch_size, num_workers=self.num_workers,
                                   persistent_workers=self.num_workers > 0, generator=self._generator())

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, generator=self._generator())

    def _generator(self) -> torch.Generator:
        # Loaders draw their worker seeds from their own generator, never from the global one, so the
        # global RNG (dropout, SpecAugment) follows only the training steps and resumes exactly.
        return torch.Generator().manual_seed(self.seed)


# ============================================================================ images


class ImageTensorDataset(Dataset):
    """uint8 images (N, H, W) or (N, C, H, W) -> normalized float (C, pad_to, pad_to), optional augmentation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, pad_to: int | None = None,
                 mean: float = MNIST_MEAN, std: float = MNIST_STD, augment=None, seed: int = 0):
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if len(images) != len(labels):
            raise ConfigError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.pad_to, self.mean, self.std = pad_to, mean, std
        self.augment, self.seed = augment, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        epoch, index = _split_key(key)
        image = self.images[index].float() / 255.0
        if self.pad_to is not None:
            h, w = image.shape[-2:]
            if h > self.pad_to or w > self.pad_to:
                raise ConfigError(f"pad_to={self.pad_to} is smaller than the {h}x{w} images")
            top, left = (self.pad_to - h) // 2, (self.pad_to - w) // 2
            image = F.pad(image, (left, self.pad_to - w - left, top, self.pad_to - h - top))
        if self.augment is not None and epoch is not None:
            image = self.augment(image, generator=make_generator(self.seed, epoch, index))
        return (image - self.mean) / self.std, self.labels[index]


def _image_augment(augment: bool | dict | None):
    """``True`` = the random affine preset with its default ranges; a dict = the preset with those ranges."""
    if not augment:
        return None
    from speechconv.data.image_augment import SeedImageAugment

    return SeedImageAugment() if augment is True else SeedImageAugment(**augment)


class MNISTDataModule(_LoaderMixin, pl.LightningDataModule):
    """MNIST from local IDX files (``read_mnist``), zero-padded to ``pad_to`` (32 for LeNet-5).

    The last ``val_split`` training images are the validation set; the 10k test set is the test set.
    Nothing is downloaded: ``data_dir`` must hold the four IDX files (plain or gzipped).
    ``augment``: False, True (a random affine warp per image: rotation, shift, scale, flip, shear, stretch,
    with default ranges) or a dict of
    :class:`~speechconv.data.image_augment.SeedImageAugment` ranges.
    """

    def __init__(self, data_dir: str = "runs/mnist/data", batch_size: int = 128,
                 augment: bool | dict[str, Any] = False, val_split: int = 5000, pad_to: int = 32,
                 num_workers: int = 0, seed: int = 0, train_subset: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir, self.batch_size, self.augment = data_dir, batch_size, augment
        self.val_split, self.pad_to, self.num_workers, self.seed = val_split, pad_to, num_workers, seed
        self.train_subset = train_subset

    def _has_files(self) -> bool:
        return os.path.isdir(self.data_dir) and any(Path(self.data_dir).iterdir())

    def prepare_data(self) -> None:
        if not self._has_files():
            from speechconv.data.readers import DatasetError

            raise DatasetError(f"{self.data_dir}: no MNIST files (speechconv never downloads data; give the "
                               "folder with the four IDX files as data_dir)")

    def _read(self, train: bool):
        from speechconv.data.readers import read_mnist

        root = Path(self.data_dir)
        raw = root / "MNIST" / "raw"  # torchvision's download layout
        return read_mnist(raw if raw.is_dir() and not any(root.glob("*idx*")) else root, train)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and not hasattr(self, "train_set"):
            images, labels = self._read(train=True)
            if not 0 <= self.val_split < len(labels):
                raise ConfigError(f"val_split={self.val_split} must be in [0, {len(labels)})")
            cut = len(labels) - self.val_split
            train_images, train_labels = images[:cut], labels[:cut]
            if self.train_subset:
                train_images, train_labels = train_images[: self.train_subset], train_labels[: self.train_subset]
            self.train_set = ImageTensorDataset(train_images, train_labels, self.pad_to,
                                                augment=_image_augment(self.augment), seed=self.seed)
            self.val_set = ImageTensorDataset(images[cut:], labels[cut:], self.pad_to)
        if stage in (None, "test", "predict") and not hasattr(self, "test_set"):
            self.test_set = ImageTensorDataset(*self._read(train=False), self.pad_to)

    def train_dataloader(self):
        return self._train_loader(self.train_set)

    def val_dataloader(self):
        return self._eval_loader(self.val_set)

    def test_dataloader(self):
        return self._eval_loader(self.test_set)


def synthetic_images(n: int, num_classes: int, size: int, channels: int,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ``k`` is a bright bar through the centre at angle ``k * 180 / num_classes`` degrees, shifted
    and noised: uint8 images (n, channels, size, size) and labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angles = labels.float() * math.pi / num_classes
    shift = (torch.rand(n, 2, generator=g) - 0.5) * size * 0.2
    dist = (-(xx - shift[:, 0, None, None]) * torch.sin(angles)[:, None, None]
            + (yy - shift[:, 1, None, None]) * torch.cos(angles)[:, None, None]).abs()
    bar = (dist < size * 0.08).float()
    noise = torch.rand(n, size, size, generator=g) * 0.3
    images = ((bar * 0.7 + noise).clamp(0, 1) * 255).to(torch.uint8)
    return images.unsqueeze(1).expand(n, channels, size, size).contiguous(), labels


class SyntheticImageDataModule(_LoaderMixin, pl.LightningDataModule):
    """Generated bar images (see :func:`synthetic_images`) for smoke tests of image configs."""

    def __init__(self, num_classes: int = 10, image_size: int = 32, channels: int = 1, n_train: int = 64,
                 n_val: int = 32, n_test: int = 32, batch_size: int = 16, augment: bool | dict[str, Any] = False,
                 num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        make = lambda n, s: synthetic_images(n, num_classes, image_size, channels, s)  # noqa: E731
        self.train_set = ImageTensorDataset(*make(n_train, seed), augment=_image_augment(augment), seed=seed,
                                            mean=0.5, std=0.5)
        self.val_set = ImageTensorDataset(*make(n_val, seed + 1), mean=0.5, std=0.5)
        self.test_set = ImageTensorDataset(*make(n_test, seed + 2), mean=0.5, std=0.5)

    def train_dataloader(self):
        return self._train_loader(self.train_set)

    def val_dataloader(self):
        return self._eval_loader(self.val_set)

    def test_dataloader(self):
        return self._eval_loader(self.test_set)


# ============================================================================ audio


def speech_end(wave: torch.Tensor, sample_rate: int, threshold_db: float = -40.0, frame_s: float = 0.01) -> int:
    """Sample index where the last 10 ms frame within ``threshold_db`` of the loudest frame ends."""
    frame = max(1, int(frame_s * sample_rate))
    n = len(wave) // frame
    if n == 0:
        return len(wave)
    energy = wave[: n * frame].reshape(n, frame).pow(2).mean(dim=1)
    loud = (10 * torch.log10(energy / energy.max().clamp_min(1e-12) + 1e-12) > threshold_db).nonzero()
    return int(loud[-1]) * frame + frame if len(loud) else len(wave)


def place_clip(wave: torch.Tensor, length: int, event: tuple[int, int], generator: torch.Generator | None,
               end_margin: int) -> tuple[torch.Tensor, int, int]:
    """Crop or pad ``wave`` to ``length`` samples so that the event's end lies inside the clip.

    ``event`` = (start, end) samples in ``wave``. With a ``generator`` (training) the placement is
    random among those keeping the event end inside; without one (evaluation) the event end lands
    ``end_margin`` samples before the clip end (or as close as the audio allows). Returns the clip and
    the event span inside it.
    """
    start, end = event
    n = len(wave)
    if n <= length:  # pad: offset = where the audio starts in the clip
        lo, hi = 0, length - n
        offset = hi - min(end_margin, hi) if generator is None else int(
            torch.randint(lo, hi + 1, (), generator=generator))
        clip = F.pad(wave, (offset, length - n - offset))
        return clip, start + offset, end + offset
    # crop: first kept sample `first`; keep the event end inside: end - length < first <= end - 1
    lo = max(0, end - length)
    hi = min(n - length, max(lo, end - 1))
    if generator is None:
        first = min(max(end + end_margin - length, lo), hi)
    else:
        first = int(torch.randint(lo, hi + 1, (), generator=generator))
    clip = wave[first: first + length]
    return clip, max(0, start - first), min(length, end - first)


class AudioClipDataset(Dataset):
    """Manifest entries -> fixed-length clips with label and event span, optionally augmented.

    The event is ``params["start"]``/``params["end"]`` (seconds) when the manifest gives it, else the
    whole file with its end at the end of the detected speech.
    """

    def __init__(self, entries: list, labels: Sequence[str], sample_rate: int, clip_seconds: float,
                 augment=None, seed: int = 0, train: bool = False, end_margin: float = 0.1,
                 label_map: dict[str, str] | None = None):
        self.entries, self.labels = entries, list(labels)
        self.label_map = dict(label_map or {})
        self.sample_rate, self.length = sample_rate, int(round(clip_seconds * sample_rate))
        self.augment, self.seed, self.train = augment, seed, train
        self.end_margin = int(end_margin * sample_rate)
        self.targets = [self._target(e) for e in entries]

    def _target(self, entry) -> int:
        label = self.label_map.get(entry.label, entry.label)
        if label not in self.labels:
            raise ConfigError(f"{entry.path}: label {entry.label!r} is not one of {self.labels}")
        return self.labels.index(label)

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> torch.Tensor:
        from speechconv.audio import load_audio

        wave, _ = load_audio(self.entries[index].path, self.sample_rate)
        return wave.float()

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, index = _split_key(key)
        entry = self.entries[index]
        wave = self.load(index)
        params = entry.params or {}
        if "start" in params or "end" in params:
            event = (int(float(params.get("start", 0.0)) * self.sample_rate),
                     int(float(params.get("end", len(wave) / self.sample_rate)) * self.sample_rate))
        else:
            event = (0, speech_end(wave, self.sample_rate))
        generator = make_generator(self.seed, epoch, index) if self.train and epoch is not None else None
        clip, start, end = place_clip(wave, self.length, event, generator, self.end_margin)
        if self.augment is not None and generator is not None:
            clip = self.augment(clip, generator)
            clip = F.pad(clip, (0, max(0, self.length - len(clip))))[: self.length]
        return {"wave": clip.contiguous(), "label": torch.tensor(self.targets[index]),
                "start": torch.tensor(start), "end": torch.tensor(end)}


class AudioManifestDataModule(_LoaderMixin, pl.LightningDataModule):
    """Clips from train/val/test manifests (``.jsonl``/``.csv``, see :mod:`speechconv.data.manifest`).

    Parameters
    ----------
    labels:
        Class names in model output order; every manifest label must be one of them (after
        ``label_map``, e.g. ``{"cat": "_unknown_"}``).
    sample_rate, clip_seconds:
        Audio is resampled to ``sample_rate`` and cropped/padded to ``clip_seconds`` so the event
        (keyword) end is inside the clip: at a random position when training, ``end_margin`` seconds
        before the clip end when evaluating.
    augment:
        Waveform augmentation config for training (``build_augment``: list of ``{"name": ...}``).
    split_column:
        When set, one manifest may hold all splits: ``train_manifest`` entries with ``split`` equal to
        ``"train"`` / ``"validation"`` / ``"test"`` feed the matching loader when the other paths are null.
    """

    def __init__(self, train_manifest: str, val_manifest: str | None = None, test_manifest: str | None = None,
                 labels: list[str] | None = None, sample_rate: int = 16000, clip_seconds: float = 1.0,
                 batch_size: int = 64, num_workers: int = 0, augment: list[dict] | dict | None = None,
                 seed: int = 0, end_margin: float = 0.1, label_map: dict[str, str] | None = None,
                 split_column: bool = False):
        super().__init__()
        self.save_hyperparameters()
        if not labels:
            raise ConfigError("AudioManifestDataModule needs labels (class names in model output order)")
        self.manifests = {"train": train_manifest, "val": val_manifest, "test": test_manifest}
        self.labels, self.sample_rate, self.clip_seconds = list(labels), sample_rate, clip_seconds
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.augment_config, self.end_margin = augment, end_margin
        self.label_map, self.split_column = label_map, split_column
        self.datasets: dict[str, AudioClipDataset] = {}

    def _entries(self, split: str) -> list:
        from speechconv.data.manifest import read_manifest

        path = self.manifests[split]
        if self.split_column and path is None:
            names = {"train": "train", "val": "validation", "test": "test"}
            return [e for e in read_manifest(self.manifests["train"]) if e.split == names[split]]
        if path is None:
            return []
        entries = read_manifest(path)
        if self.split_column and split == "train":
            entries = [e for e in entries if e.split == "train"]
        return entries

    def _dataset(self, split: str) -> AudioClipDataset:
        if split not in self.datasets:
            entries = self._entries(split)
            if not entries:
                raise ConfigError(f"no {split} data: set data.{split}_manifest")
            augment = None
            if split == "train" and self.augment_config:
                augment = build_augment(self.augment_config, self.sample_rate)
            self.datasets[split] = AudioClipDataset(entries, self.labels, self.sample_rate, self.clip_seconds,
                                                    augment, self.seed, split == "train", self.end_margin,
                                                    self.label_map)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._dataset("train")
        if stage in (None, "fit", "validate"):
            self._dataset("val")
        if stage in (None, "test"):
            self._dataset("test")

    def train_dataloader(self):
        return self._train_loader(self._dataset("train"))

    def val_dataloader(self):
        return self._eval_loader(self._dataset("val"))

    def test_dataloader(self):
        return self._eval_loader(self._dataset("test"))


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

    def train_dataloader(self):
        return self._train_loader(self.train_set)

    def val_dataloader(self):
        return self._eval_loader(self.val_set)

    def test_dataloader(self):
        return self._eval_loader(self.test_set)
