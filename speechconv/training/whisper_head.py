"""Train a :class:`~speechconv.models.whisper_head.WhisperKeywordHead` on Whisper encoder frames of clips.

The encoder is frozen, so each augmented pass over the training clips is encoded once
(:func:`embed_clips`: the clips of one epoch, augmented as that epoch of a detector's training draws them,
packed 20 to a 30 s window) and the head trains on the stored frames (:func:`train_head`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from speechconv.frontends import whisper
from speechconv.models.whisper_head import WhisperKeywordHead


class _EpochView(Dataset):
    """One epoch of an :class:`~speechconv.training.datamodules.audio.AudioClipDataset`: its augmentation
    draws for that epoch."""

    def __init__(self, dataset, epoch: int):
        self.dataset, self.epoch = dataset, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[(self.epoch, index)]
        return item["wave"], item["label"], index


def embed_clips(encoder, dataset, epoch: int, workers: int = 2,
                progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Encoder frames of every clip of ``dataset`` as drawn in ``epoch`` (in an order shuffled by the
    epoch): ``{"x": [N, frames, D] float16, "y": [N] labels, "i": [N] dataset indices}``."""
    count = whisper.clips_per_window(dataset.length)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(epoch)).tolist()
    loader = DataLoader(Subset(_EpochView(dataset, epoch), order), batch_size=count, num_workers=workers)
    frames, labels, indices = [], [], []
    for batch, (waves, label, index) in enumerate(loader):
        encoded = encoder.encode(whisper.pack_clips(waves)[None])[0]
        frames.append(whisper.unpack_clips(encoded, len(waves), dataset.length).astype(np.float16))
        labels.append(label.numpy())
        indices.append(index.numpy())
        if progress is not None:
            progress(batch + 1, len(loader))
    return {"x": np.concatenate(frames), "y": np.concatenate(labels), "i": np.concatenate(indices)}


def train_head(frames: torch.Tensor, labels: torch.Tensor, *, epochs: int = 8, seed: int = 0, lr: float = 2e-3,
               weight_decay: float = 1e-2, batch_size: int = 128, head_options: dict | None = None,
               log: Callable[[str], None] | None = None) -> WhisperKeywordHead:
    """Fit a head to ``frames [N, T, D]`` with 0/1 ``labels [N]``: max-pooling loss (each clip's highest
    frame against its label), AdamW with a one-cycle schedule. Returns it in eval mode."""
    if len(frames) < batch_size:
        raise ValueError(f"train_head needs at least one batch of {batch_size} clips, got {len(frames)}")
    torch.manual_seed(seed)
    head = WhisperKeywordHead(dim=frames.shape[-1], **(head_options or {}))
    labels = labels.float()
    steps = len(frames) // batch_size
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * steps)
    head.train()
    for epoch in range(epochs):
        order, total = torch.randperm(len(frames)), 0.0
        for step in range(steps):
            batch = order[step * batch_size:(step + 1) * batch_size]
            logits = head(frames[batch].float()).amax(dim=1)
            loss = F.binary_cross_entropy_with_logits(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        if log is not None:
            log(f"whisper head epoch {epoch}: loss {total / steps:.4f}")
    return head.eval()


def encoded_passes(encoder, dataset, folder: str | os.PathLike[str], passes: int, prefix: str = "pass",
                   workers: int = 2, force: bool = False,
                   log: Callable[[str], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(frames [N * passes, T, D], labels)`` of ``passes`` augmented passes over ``dataset``
    (:func:`embed_clips` with epochs 0, 1, ...), each cached as ``folder/<prefix><epoch>.npz`` (written whole or
    not at all), so a stopped run resumes by pass; ``force`` encodes again."""
    folder = Path(folder)
    xs, ys = [], []
    for epoch in range(passes):
        path = folder / f"{prefix}{epoch}.npz"
        if force or not path.is_file():
            started = time.monotonic()
            arrays = embed_clips(encoder, dataset, epoch, workers=workers)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.partial.npz")
            try:
                np.savez(tmp, **arrays)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            if log is not None:
                log(f"encoded augmented pass {epoch + 1}/{passes} ({len(arrays['y'])} clips) in "
                    f"{time.monotonic() - started:.0f} s")
        with np.load(path) as arrays:
            xs.append(arrays["x"])
            ys.append(arrays["y"])
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def save_head(head: WhisperKeywordHead, path: str | os.PathLike[str]) -> None:
    """``{"config", "state_dict"}`` of ``head`` to ``path`` (written whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        torch.save({"config": head.config, "state_dict": head.state_dict()}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_head(path: str | os.PathLike[str], **options) -> WhisperKeywordHead:
    """A head saved by :func:`save_head` (read weights-only), in eval mode; ``options`` override its config
    (e.g. ``temperature``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    head = WhisperKeywordHead(**{**saved["config"], **options})
    head.load_state_dict(saved["state_dict"])
    return head.eval()
