"""Whole transcribed utterances with phone targets: the data of an auxiliary phone-recognition (CTC) task.

A keyword detector trained from synthetic keywords sees real voices only as negatives. Utterances with
transcripts (real read speech, spoken digits, TTS phrases) give its encoder phone targets on real
voices too (``AudioClassifier(ctc=...)``). Utterances are kept whole, since a transcript cannot be
cropped without an alignment; batches are padded and carry their lengths.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from speechconv.data.augment import make_generator
from speechconv.errors import ConfigError
from speechconv.training.datamodules.loaders import _split_key


class TranscribedDataset(Dataset):
    """Manifest entries with ``text`` -> ``{"wave", "targets"}`` (phone ids), optionally augmented."""

    def __init__(self, entries: list, sample_rate: int, max_seconds: float = 16.0, augment=None, seed: int = 0):
        from speechconv.audio import audio_info
        from speechconv.data.phones import phone_ids, text_phones

        def seconds(entry) -> float:
            return entry.duration or audio_info(entry.path).duration

        entries = [e for e in entries if e.text and seconds(e) <= max_seconds]  # a transcript cannot be cut
        phones = text_phones([e.text for e in entries])
        self.entries = [e for e in entries if phones[e.text]]
        if not self.entries:
            raise ConfigError("transcribed manifest: no entry with a text that has phones")
        self.targets = [phone_ids(phones[e.text]) for e in self.entries]
        self.sample_rate = sample_rate
        self.augment, self.seed = augment, seed

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        from speechconv.audio import load_audio

        epoch, index = _split_key(key)
        wave, _ = load_audio(self.entries[index].path, self.sample_rate)
        wave = wave.float()
        if self.augment is not None and epoch is not None:
            wave = self.augment(wave, make_generator(self.seed, epoch, index))
        return {"wave": wave.contiguous(), "targets": torch.tensor(self.targets[index], dtype=torch.long)}


def pad_utterances(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Right-pad waves and concatenate targets (the layout of ``torch.nn.functional.ctc_loss``)."""
    lengths = torch.tensor([len(item["wave"]) for item in items])
    wave = torch.zeros(len(items), int(lengths.max()))
    for row, item in zip(wave, items):
        row[: len(item["wave"])] = item["wave"]
    return {"wave": wave, "wave_lengths": lengths, "targets": torch.cat([item["targets"] for item in items]),
            "target_lengths": torch.tensor([len(item["targets"]) for item in items])}


class DrawSampler(Sampler):
    """``num_samples`` keys ``(epoch, index)`` drawn with replacement, seeded by ``(seed, epoch)``: the
    auxiliary loader yields exactly as many batches as the main one, whatever the sizes of both."""

    def __init__(self, size: int, num_samples: int, seed: int = 0, epoch_fn=None):
        self.size, self.num_samples, self.seed, self.epoch_fn = size, num_samples, seed, epoch_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.epoch_fn()) if self.epoch_fn is not None else self.epoch
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        indices = torch.randint(self.size, (self.num_samples,), generator=generator).tolist()
        return iter([(epoch, i) for i in indices])
