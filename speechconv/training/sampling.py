"""Epoch-aware, resumable sampling: every example knows (epoch, index) for its augmentation seed.

``EpochSampler`` is a :class:`~torch.utils.data.DistributedSampler` (so Lightning keeps it under DDP
and calls ``set_epoch``) that yields ``(epoch, index)`` pairs; datasets seed their augmentation from
``(seed, epoch, index)``, so the same example gets the same augmentation in any worker, on any rank.

``ResumableDataLoader`` implements ``state_dict``/``load_state_dict`` (Lightning saves it in every
checkpoint): resuming from a mid-epoch checkpoint skips the batches that were already trained on and
continues with the same shuffle order, so an interrupted run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochSampler(DistributedSampler):
    """Shuffled (or ordered) indices of this rank's shard, yielded as ``(epoch, index)``.

    ``epoch_fn`` (optional) returns the current epoch when iteration starts; it takes precedence
    over ``set_epoch`` so the value is right even when the loader is iterated before Lightning
    calls ``set_epoch`` (first epoch after a resume).
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0, drop_last: bool = False, epoch_fn: Callable[[], int] | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.epoch_fn = epoch_fn
        self.skip = 0  # samples of this epoch already consumed (set by a resume)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.epoch_fn is not None:
            self.epoch = int(self.epoch_fn())
        indices = list(super().__iter__())[self.skip:]
        self.skip = 0
        epoch = self.epoch
        return iter([(epoch, index) for index in indices])


class ResumableDataLoader(DataLoader):
    """DataLoader over an :class:`EpochSampler` that can skip the batches a checkpoint already saw."""

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs: Any):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._delivered = 0  # batches handed to the trainer in the current pass

    def __iter__(self):
        skipped = self.sampler.skip // self.batch_size
        iterator = super().__iter__()
        return _Counting(iterator, self, skipped)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._delivered)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        batches = int(state.get("batches", 0))
        self.sampler.set_epoch(int(state.get("epoch", 0)))
        # A checkpoint saved at the end of an epoch resumes at the start of the next one.
        self.sampler.skip = batches * self.batch_size if batches < len(self) else 0
        self._delivered = 0


class _Counting:
    """Iterator wrapper counting delivered batches (the trainer never sees prefetched ones)."""

    def __init__(self, iterator, loader: ResumableDataLoader, start: int):
        self.iterator = iterator
        self.loader = loader
        loader._delivered = start

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.iterator)
        self.loader._delivered += 1
        return batch

    def __len__(self) -> int:
        return len(self.iterator)
