"""Background noise at a random SNR from a folder or list of noise files (:class:`AddNoise`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from speechconv.audio.discover import AUDIO_EXTENSIONS
from speechconv.data.augment.base import WaveAugment
from speechconv.data.augment.dsp import _fit_length, mix_at_snr, signal_power
from speechconv.data.augment.sampling import _randint, _range, _uniform
from speechconv.errors import ConfigError, SpeechconvError

AUDIO_SUFFIXES = AUDIO_EXTENSIONS  # one list of audio suffixes, speechconv.audio's


class AddNoise(WaveAugment):
    """Mix in a random segment of real noise at an SNR drawn uniformly from ``snr_db``.

    Sources: ``noise`` (audio file paths, directories searched recursively for audio files, or 1-D
    tensors already at ``sample_rate``) and/or ``noise_dir``. Files are read with soundfile (mixed
    to mono) and resampled with soxr when their rate differs. A segment as long as the clip starts
    at a random offset; shorter noise is looped. The SNR reference is the signal power over the
    whole clip (``power="clip"``) or over its active frames (``power="active"``, see
    ``signal_power``). ``cache=True`` keeps decoded files in memory (per worker process).
    """

    name = "noise"

    def __init__(
        self,
        noise: str | Path | Tensor | Sequence[str | Path | Tensor] | None = None,
        noise_dir: str | Path | None = None,
        snr_db: float | Sequence[float] = (0.0, 20.0),
        power: str = "clip",
        cache: bool = False,
        sample_rate: int = 16000,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.snr_db = _range(snr_db, "AddNoise snr_db")
        if power not in ("clip", "active"):
            raise ConfigError(f"AddNoise: power must be 'clip' or 'active', got {power!r}")
        self.power = power
        self.cache = bool(cache)
        self.sample_rate = int(sample_rate)
        items: list = [] if noise is None else (list(noise) if isinstance(noise, (list, tuple)) else [noise])
        if noise_dir is not None:
            items.append(Path(noise_dir))
        self.sources: list[Tensor | Path] = []
        self._frames: list[tuple[int, int]] = []  # (frames, sample rate) per source
        for item in items:
            if isinstance(item, Tensor):
                self._add_tensor(item)
            else:
                self._add_path(Path(item))
        if not self.sources:
            raise ConfigError("AddNoise: no noise given (set noise=[files/dirs/tensors] or noise_dir)")
        self._cache: dict[int, Tensor] = {}

    def _add_tensor(self, noise: Tensor) -> None:
        if noise.dim() != 1 or noise.numel() == 0 or not noise.is_floating_point():
            raise ConfigError(
                f"AddNoise: noise tensors must be non-empty 1-D float, got {tuple(noise.shape)}"
            )
        self.sources.append(noise)
        self._frames.append((noise.numel(), self.sample_rate))

    def _add_path(self, path: Path) -> None:
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise ConfigError(f"AddNoise: no audio files ({', '.join(AUDIO_SUFFIXES)}) in {path}")
            for f in files:
                self._add_path(f)
            return
        if not path.is_file():
            raise ConfigError(f"AddNoise: noise file {path} does not exist")
        try:
            info = sf.info(str(path))
        except Exception as err:
            raise SpeechconvError(f"{path}: cannot read noise audio ({err})") from err
        if info.frames == 0:
            raise ConfigError(f"{path}: noise file is empty")
        self.sources.append(path)
        self._frames.append((info.frames, info.samplerate))

    def _read(self, path: Path, start: int = 0, stop: int | None = None) -> Tensor:
        """Frames [start, stop) as mono float32 at the file's own rate."""
        try:
            data, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
        except Exception as err:
            raise SpeechconvError(f"{path}: cannot read noise audio ({err})") from err
        return torch.from_numpy(data.mean(axis=1))

    def _to_rate(self, noise: Tensor, rate: int) -> Tensor:
        if rate == self.sample_rate:
            return noise
        return torch.from_numpy(soxr.resample(noise.numpy(), rate, self.sample_rate).astype(np.float32))

    def _whole(self, index: int) -> Tensor:
        """The whole source at ``sample_rate`` (cached when enabled)."""
        if index in self._cache:
            return self._cache[index]
        source = self.sources[index]
        noise = (
            source
            if isinstance(source, Tensor)
            else self._to_rate(self._read(source), self._frames[index][1])
        )
        if self.cache:
            self._cache[index] = noise
        return noise

    def segment(self, index: int, offset: float, n: int) -> Tensor:
        """``n`` samples of source ``index`` at ``sample_rate``, starting at fraction ``offset`` of the
        possible start positions; sources shorter than ``n`` are looped from a random phase."""
        frames, rate = self._frames[index]
        source = self.sources[index]
        need = int(math.ceil(n * rate / self.sample_rate)) + 32  # source frames covering n output samples
        if isinstance(source, Path) and not self.cache and frames >= need:
            start = int(offset * (frames - need))
            return _fit_length(self._to_rate(self._read(source, start, start + need), rate), n)
        noise = self._whole(index)
        if noise.numel() >= n:
            start = int(offset * (noise.numel() - n))
            return noise[start : start + n]
        start = int(offset * noise.numel())
        reps = math.ceil((n + start) / noise.numel())
        return noise.repeat(reps)[start : start + n]

    def sample_params(self, generator, wave):
        index = _randint(generator, 0, len(self.sources) - 1)
        offset = float(torch.rand((), generator=generator, dtype=torch.float64))
        noise = self.segment(index, offset, wave.shape[-1]).to(wave.dtype)
        return {"noise": noise, "snr_db": _uniform(generator, *self.snr_db)}

    def apply(self, wave: Tensor, noise: Tensor, snr_db: float) -> Tensor:
        ref = signal_power(wave, self.power, self.sample_rate)
        return mix_at_snr(wave, noise, snr_db, signal_pow=ref)
