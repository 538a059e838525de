"""What every data module shares: seeded epoch sampling and the loaders built on it."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from speechconv.training.sampling import EpochSampler, ResumableDataLoader


def _split_key(key: int | tuple[int, int]) -> tuple[int | None, int]:
    """Sampler keys are ``(epoch, index)`` when training, plain indices otherwise."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return None, int(key)


class _LoaderMixin:
    """What the data modules share: seeded training loaders, evaluation loaders, and the three
    ``*_dataloader`` hooks over ``train_set``, ``val_set`` and ``test_set``."""

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

    def train_dataloader(self) -> DataLoader:
        return self._train_loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def _generator(self) -> torch.Generator:
        # Loaders draw their worker seeds from their own generator, never from the global one, so the
        # global RNG (dropout, SpecAugment) follows only the training steps and resumes exactly.
        return torch.Generator().manual_seed(self.seed)


