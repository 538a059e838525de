"""Image data modules: MNIST (from a local copy, never downloaded) and synthetic images for smoke tests."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from speechconv.data.augment import make_generator
from speechconv.errors import ConfigError
from speechconv.training.datamodules.loaders import _LoaderMixin, _split_key

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


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
    from speechconv.vision.augment import RandomAffineWarp

    return RandomAffineWarp() if augment is True else RandomAffineWarp(**augment)


class MNISTDataModule(_LoaderMixin, pl.LightningDataModule):
    """MNIST from local IDX files (``read_mnist``), zero-padded to ``pad_to`` (32 for LeNet-5).

    The last ``val_split`` training images are the validation set; the 10k test set is the test set.
    Nothing is downloaded: ``data_dir`` must hold the four IDX files (plain or gzipped).
    ``augment``: False, True (a random affine warp per image: rotation, shift, scale, flip, shear, stretch,
    with default ranges) or a dict of
    :class:`~speechconv.vision.augment.RandomAffineWarp` ranges.
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


