"""Audio clips from manifests: the labelled event placed in a fixed-length clip, seeded augmentation."""

from __future__ import annotations

from typing import Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from speechconv.audio.activity import active_span
from speechconv.data.augment import Compose, build_augment, make_generator
from speechconv.errors import ConfigError
from speechconv.training.datamodules.loaders import _LoaderMixin, _split_key


def speech_end(wave: torch.Tensor, sample_rate: int, threshold_db: float = -40.0, frame_s: float = 0.01) -> int:
    """Sample index where the last 10 ms frame within ``threshold_db`` of the loudest frame ends (the clip's
    length when it is silent or shorter than a frame; :func:`speechconv.audio.activity.active_span`)."""
    span = active_span(wave.detach().cpu().numpy(), sample_rate, threshold_db, frame_s)
    return len(wave) if span is None else span[1]


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


def augment_recording(augment, wave: torch.Tensor, event: tuple[int, int], generator: torch.Generator
                      ) -> tuple[torch.Tensor, tuple[int, int]]:
    """``augment`` on a whole recording before its clip is cut; the event span scales with its length."""
    n = len(wave)
    wave = augment(wave, generator)
    scale = len(wave) / n
    return wave, (int(round(event[0] * scale)), int(round(event[1] * scale)))


class AudioClipDataset(Dataset):
    """Manifest entries -> fixed-length clips with label and event span, optionally augmented.

    The event is ``params["start"]``/``params["end"]`` (seconds) when the manifest gives it, else the
    whole file with its end at the end of the detected speech.
    """

    def __init__(self, entries: list, labels: Sequence[str], sample_rate: int, clip_seconds: float,
                 augment=None, seed: int = 0, train: bool = False, end_margin: float = 0.1,
                 label_map: dict[str, str] | None = None, domains: bool = False, recording_augment=None):
        self.entries, self.labels = entries, list(labels)
        self.label_map = dict(label_map or {})
        self.sample_rate, self.length = sample_rate, int(round(clip_seconds * sample_rate))
        self.augment, self.seed, self.train = augment, seed, train
        self.recording_augment = recording_augment
        self.end_margin = int(end_margin * sample_rate)
        self.targets = [self._target(e) for e in entries]
        self.domains = None
        if domains:  # real recording or synthetic voice, from the entry's engine
            from speechconv.training.domain_adversarial import domain_of

            self.domains = [domain_of(e.engine) for e in entries]

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
        if self.recording_augment is not None and generator is not None:
            wave, event = augment_recording(self.recording_augment, wave, event, generator)
        clip, start, end = place_clip(wave, self.length, event, generator, self.end_margin)
        if self.augment is not None and generator is not None:
            clip = self.augment(clip, generator)
            clip = F.pad(clip, (0, max(0, self.length - len(clip))))[: self.length]
        item = {"wave": clip.contiguous(), "label": torch.tensor(self.targets[index]),
                "start": torch.tensor(start), "end": torch.tensor(end)}
        if self.domains is not None:
            item["domain"] = torch.tensor(self.domains[index])
        return item


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
        Waveform augmentation config for training (``build_augment``: list of ``{"name": ...}``),
        applied to each clip after it is cut.
    recording_augment:
        The same, applied to the whole recording before the clip is cut: for ops that change the
        length (``tempo``, ``speed``), so that the event span moves with the audio and the cut keeps the
        keyword's end inside the clip.
    split_column:
        When set, one manifest may hold all splits: ``train_manifest`` entries with ``split`` equal to
        ``"train"`` / ``"validation"`` / ``"test"`` feed the matching loader when the other paths are null.
    transcribed_manifest:
        Utterances with ``text`` for an auxiliary phone-recognition task (``AudioClassifier(ctc=...)``):
        training batches become ``{"keyword": clips, "phones": utterances}``, with
        ``transcribed_batch_size`` whole utterances of at most ``transcribed_max_seconds`` (augmented
        like the clips) per step.
    domain_labels:
        Training clips also carry ``domain`` (:func:`~speechconv.training.domain_adversarial.domain_of`
        of their ``engine``: real recording, synthetic voice, or neither) for ``AudioClassifier(
        domain_adversarial=...)``.
    """

    def __init__(self, train_manifest: str, val_manifest: str | None = None, test_manifest: str | None = None,
                 labels: list[str] | None = None, sample_rate: int = 16000, clip_seconds: float = 1.0,
                 batch_size: int = 64, num_workers: int = 0, augment: list[dict] | dict | None = None,
                 seed: int = 0, end_margin: float = 0.1, label_map: dict[str, str] | None = None,
                 split_column: bool = False, transcribed_manifest: str | None = None,
                 transcribed_batch_size: int = 8, transcribed_max_seconds: float = 16.0,
                 domain_labels: bool = False, recording_augment: list[dict] | dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        if not labels:
            raise ConfigError("AudioManifestDataModule needs labels (class names in model output order)")
        self.manifests = {"train": train_manifest, "val": val_manifest, "test": test_manifest}
        self.labels, self.sample_rate, self.clip_seconds = list(labels), sample_rate, clip_seconds
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.augment_config, self.end_margin = augment, end_margin
        self.recording_augment_config = recording_augment
        self.label_map, self.split_column = label_map, split_column
        self.transcribed_manifest = transcribed_manifest
        self.transcribed_batch_size, self.transcribed_max_seconds = transcribed_batch_size, transcribed_max_seconds
        self.datasets: dict[str, AudioClipDataset] = {}
        self.transcribed = None
        self.domain_labels = domain_labels

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
            augment = recording_augment = None
            if split == "train" and self.augment_config:
                augment = build_augment(self.augment_config, self.sample_rate)
            if split == "train" and self.recording_augment_config:
                recording_augment = build_augment(self.recording_augment_config, self.sample_rate)
            self.datasets[split] = AudioClipDataset(entries, self.labels, self.sample_rate, self.clip_seconds,
                                                    augment, self.seed, split == "train", self.end_margin,
                                                    self.label_map, self.domain_labels and split == "train",
                                                    recording_augment)
        return self.datasets[split]

    def _transcribed(self):
        if self.transcribed is None:
            from speechconv.data.manifest import read_manifest
            from speechconv.training.datamodules.transcribed import TranscribedDataset

            configs = [c for c in (self.recording_augment_config, self.augment_config) if c]
            ops = [op for c in configs for op in build_augment(c, self.sample_rate).ops]
            augment = Compose(ops) if ops else None
            self.transcribed = TranscribedDataset(read_manifest(self.transcribed_manifest), self.sample_rate,
                                                  self.transcribed_max_seconds, augment, self.seed + 1)
        return self.transcribed

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._dataset("train")
            if self.transcribed_manifest:
                self._transcribed()
        if stage in (None, "fit", "validate"):
            self._dataset("val")
        if stage in (None, "test"):
            self._dataset("test")

    def train_dataloader(self):
        clips = self._train_loader(self._dataset("train"))
        if not self.transcribed_manifest:
            return clips
        from torch.utils.data import DataLoader

        from speechconv.training.datamodules.transcribed import DrawSampler, pad_utterances

        trainer = getattr(self, "trainer", None)
        epoch_fn = (lambda: trainer.current_epoch) if trainer is not None else None
        dataset = self._transcribed()
        sampler = DrawSampler(len(dataset), len(clips) * self.transcribed_batch_size, self.seed + 1, epoch_fn)
        utterances = DataLoader(dataset, batch_size=self.transcribed_batch_size, sampler=sampler,
                                collate_fn=pad_utterances, num_workers=self.num_workers,
                                persistent_workers=self.num_workers > 0, generator=self._generator())
        return {"keyword": clips, "phones": utterances}

    def val_dataloader(self):
        return self._eval_loader(self._dataset("val"))

    def test_dataloader(self):
        return self._eval_loader(self._dataset("test"))
