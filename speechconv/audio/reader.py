"""Block reader: stream a long audio file in chunks with bounded memory.

Each block is decoded, downmixed, checked for NaN/Inf and resampled by one stateful soxr stream,
so the concatenated chunks equal :func:`speechconv.audio.load_audio` (exactly when no resampling
is needed). Memory depends on ``block_seconds``, never on the file length.

Truncated or part-corrupt files, in every format: the blocks up to the damage are yielded, then
:class:`~speechconv.audio.io.TruncatedAudio` is raised with the seconds that were decoded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from speechconv.audio.io import (
    AudioError,
    AudioSource,
    TruncatedAudio,
    check_finite,
    check_sample_rate,
    clip_unit,
    downmix,
    is_pcm16,
    make_resampler,
    open_audio,
    read_block,
    truncation,
)
from speechconv.errors import ConfigError

if TYPE_CHECKING:
    import torch


def iter_audio_blocks(
    path: AudioSource, sample_rate: int, block_seconds: float = 10.0
) -> Iterator[torch.Tensor]:
    """:func:`iter_audio_arrays` as torch tensors (sharing the arrays' memory)."""
    import torch

    return (torch.from_numpy(chunk) for chunk in iter_audio_arrays(path, sample_rate, block_seconds))


def iter_audio_arrays(
    path: AudioSource, sample_rate: int, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Yield mono float32 1-D numpy chunks of ``path`` at ``sample_rate``.

    Every chunk holds exactly ``round(block_seconds * sample_rate)`` samples, except the last,
    which may be shorter. The file stays open until the iterator is exhausted or closed.
    Raises :class:`AudioError` for bad input, including a chunk with NaN/Inf samples. A file that is cut
    short or stops decoding part-way raises :class:`TruncatedAudio` after the chunks decoded before the
    damage have been yielded (its ``seconds`` says how much audio that was).
    """
    sample_rate = check_sample_rate(sample_rate)
    if not (isinstance(block_seconds, (int, float)) and 0 < block_seconds < math.inf):
        raise ConfigError(f"block_seconds must be > 0, got {block_seconds!r}")
    return _blocks(path, sample_rate, float(block_seconds))


def _blocks(path: AudioSource, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    with open_audio(path) as (name, f):
        in_rate = int(f.samplerate)
        read_size = max(1, round(block_seconds * in_rate))
        resampler = make_resampler(in_rate, sample_rate) if in_rate != sample_rate else None
        # 16-bit PCM is finite and within [-1, 1): no NaN check, and no clipping unless resampled.
        pcm16 = is_pcm16(f)
        out = _Rechunker(max(1, round(block_seconds * sample_rate)), clip=not pcm16 or resampler is not None)
        offset = 0
        while True:
            # A fresh array per read: without resampling, a chunk is handed on without a copy.
            frames, damage = read_block(f, read_size)
            if len(frames):
                mono = downmix(frames, copy=False)
                if not pcm16:
                    check_finite(name, mono, in_rate, offset)
                offset += len(mono)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=False)
                for chunk in out.push(mono):
                    yield chunk
            if damage is not None or len(frames) == 0:
                break
        damage = damage or truncation(f, offset)
        if offset == 0 and damage is None:
            raise AudioError(name, "no audio samples could be decoded")
        if resampler is not None:
            for chunk in out.push(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)):
                yield chunk
        tail = out.flush()
        if tail is not None:
            yield tail
        if damage is not None:
            raise TruncatedAudio(name, offset / in_rate, damage)


class _Rechunker:
    """Regroup a stream of arrays into fresh float32 arrays of exactly ``size`` samples (last one shorter).

    soxr emits output in its own internal block sizes; this keeps the chunk contract simple.
    """

    def __init__(self, size: int, clip: bool = True) -> None:
        self.size = size
        self.clip = clip
        self._pending: list[np.ndarray] = []
        self._count = 0

    def _finish(self, chunk: np.ndarray) -> np.ndarray:
        return clip_unit(chunk) if self.clip else chunk

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        """Pushed arrays are handed on (possibly without a copy): the caller must not reuse them."""
        if not self._pending and len(samples) == self.size:  # the common case: a whole chunk, no copy
            yield self._finish(np.ascontiguousarray(samples, dtype=np.float32))
            return
        if len(samples):
            self._pending.append(np.asarray(samples, dtype=np.float32))
            self._count += len(samples)
        while self._count >= self.size:
            joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            chunk, rest = joined[: self.size], joined[self.size :]
            self._pending = [rest] if len(rest) else []
            self._count = len(rest)
            yield self._finish(np.array(chunk, dtype=np.float32))

    def flush(self) -> np.ndarray | None:
        if not self._count:
            return None
        chunk = self._finish(np.concatenate(self._pending).astype(np.float32, copy=True))
        self._pending, self._count = [], 0
        return chunk
