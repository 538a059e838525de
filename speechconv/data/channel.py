"""Channel augmentation: what a microphone, a phone line and a codec do to speech.

* ``mic``: a random microphone/room colouration: peaking EQ sections at random frequencies and gains
  plus low and high shelves (RBJ cookbook biquads, filtered without torchaudio's output clamp).
* ``bandlimit``: a random high-pass (cheap microphones, wind filters) and low-pass (low sample rates,
  Bluetooth) Butterworth pair.
* ``codec``: a round trip through a lossy codec that libsndfile writes: mu-law, A-law, G.721, GSM 06.10
  (8 kHz), MP3, Ogg Vorbis, Ogg Opus, at a random quality.
* ``clip``: overdriven input: gain then hard clipping at full scale, level restored.

Each op follows :class:`speechconv.data.augment.WaveAugment`: random draws in ``sample_params``,
deterministic ``apply``. They are registered in ``AUGMENTATIONS`` for configs.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from speechconv.data.augment.base import WaveAugment
from speechconv.data.augment.dsp import _fit_length, butterworth_qs
from speechconv.data.augment.sampling import _randint, _range, _uniform
from speechconv.errors import ConfigError

#: codec name: (libsndfile format, subtype, codec sample rate or None for the input's)
CODECS = {
    "mulaw": ("WAV", "ULAW", 8000),
    "alaw": ("WAV", "ALAW", 8000),
    "g721": ("WAV", "G721_32", 8000),
    "gsm": ("WAV", "GSM610", 8000),
    "mp3": ("MP3", "MPEG_LAYER_III", None),
    "vorbis": ("OGG", "VORBIS", None),
    "opus": ("OGG", "OPUS", None),
}


def peaking_coefficients(sample_rate: int, freq_hz: float, gain_db: float, q: float) -> tuple[list, list]:
    """RBJ peaking EQ ``(b, a)``: gain ``gain_db`` at ``freq_hz``, unity far from it."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq_hz / sample_rate
    alpha = math.sin(w0) / (2 * q)
    b = [1 + alpha * amp, -2 * math.cos(w0), 1 - alpha * amp]
    a = [1 + alpha / amp, -2 * math.cos(w0), 1 - alpha / amp]
    return b, a


def shelf_coefficients(sample_rate: int, freq_hz: float, gain_db: float, kind: str) -> tuple[list, list]:
    """RBJ low or high shelf ``(b, a)`` with slope 1."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq_hz / sample_rate
    cos_w0, alpha = math.cos(w0), math.sin(w0) / 2 * math.sqrt(2)
    root = 2 * math.sqrt(amp) * alpha
    if kind == "low":
        b = [amp * ((amp + 1) - (amp - 1) * cos_w0 + root), 2 * amp * ((amp - 1) - (amp + 1) * cos_w0),
             amp * ((amp + 1) - (amp - 1) * cos_w0 - root)]
        a = [(amp + 1) + (amp - 1) * cos_w0 + root, -2 * ((amp - 1) + (amp + 1) * cos_w0),
             (amp + 1) + (amp - 1) * cos_w0 - root]
    else:
        b = [amp * ((amp + 1) + (amp - 1) * cos_w0 + root), -2 * amp * ((amp - 1) + (amp + 1) * cos_w0),
             amp * ((amp + 1) + (amp - 1) * cos_w0 - root)]
        a = [(amp + 1) - (amp - 1) * cos_w0 + root, 2 * ((amp - 1) - (amp + 1) * cos_w0),
             (amp + 1) - (amp - 1) * cos_w0 - root]
    return b, a


def _sosfilt(wave: Tensor, sections: list[tuple[list, list]]) -> Tensor:
    """Cascade of biquads ``(b, a)`` along the last axis (scipy: far faster than a per-sample torch loop)."""
    from scipy.signal import sosfilt

    sos = np.array([[*b, *a] for b, a in sections], dtype=np.float64)
    sos /= sos[:, 3:4]
    out = sosfilt(sos, wave.detach().cpu().numpy().astype(np.float64), axis=-1)
    return torch.from_numpy(out).to(wave.dtype)


def butterworth_section(sample_rate: int, cutoff_hz: float, q: float, kind: str) -> tuple[list, list]:
    """RBJ low/high-pass ``(b, a)`` (the sections of :func:`speechconv.data.augment.dsp._biquad`)."""
    w0 = 2.0 * math.pi * cutoff_hz / sample_rate
    alpha, cos_w0 = math.sin(w0) / (2.0 * q), math.cos(w0)
    if kind == "lowpass":
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
    else:
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    return b, [1 + alpha, -2 * cos_w0, 1 - alpha]


class MicResponse(WaveAugment):
    """Random colouration: ``bands`` peaking sections (log-uniform centre in ``freq_hz``, gain in
    ``gain_db``, Q in ``q``) and low/high shelves at 200 Hz / 4 kHz with gains in ``shelf_db``."""

    name = "mic"

    def __init__(self, bands: int | Sequence[int] = (1, 4), freq_hz: Sequence[float] = (150.0, 6000.0),
                 gain_db: float | Sequence[float] = (-12.0, 12.0), q: float | Sequence[float] = (0.5, 3.0),
                 shelf_db: float | Sequence[float] = (-10.0, 6.0), sample_rate: int = 16000, p: float = 1.0):
        super().__init__(p)
        lo, hi = (bands, bands) if isinstance(bands, int) else (int(bands[0]), int(bands[1]))
        if not 0 <= lo <= hi:
            raise ConfigError(f"MicResponse: bands must satisfy 0 <= min <= max, got {bands}")
        self.bands = (lo, hi)
        self.freq_hz = _range(freq_hz, "MicResponse freq_hz", positive=True)
        self.sample_rate = int(sample_rate)
        if self.freq_hz[1] >= self.sample_rate / 2:
            raise ConfigError(f"MicResponse: freq_hz must stay below {self.sample_rate / 2} Hz")
        self.gain_db = _range(gain_db, "MicResponse gain_db")
        self.q = _range(q, "MicResponse q", positive=True)
        self.shelf_db = _range(shelf_db, "MicResponse shelf_db")

    def sample_params(self, generator, wave):
        log_lo, log_hi = math.log(self.freq_hz[0]), math.log(self.freq_hz[1])
        peaks = [(math.exp(_uniform(generator, log_lo, log_hi)), _uniform(generator, *self.gain_db),
                  _uniform(generator, *self.q)) for _ in range(_randint(generator, *self.bands))]
        return {"peaks": peaks, "low_shelf_db": _uniform(generator, *self.shelf_db),
                "high_shelf_db": _uniform(generator, *self.shelf_db)}

    def apply(self, wave: Tensor, peaks: list, low_shelf_db: float = 0.0, high_shelf_db: float = 0.0) -> Tensor:
        sections = [peaking_coefficients(self.sample_rate, freq, gain, q) for freq, gain, q in peaks]
        sections.append(shelf_coefficients(self.sample_rate, 200.0, low_shelf_db, "low"))
        sections.append(shelf_coefficients(self.sample_rate, 4000.0, high_shelf_db, "high"))
        return _sosfilt(wave, sections)


class BandLimit(WaveAugment):
    """High-pass at a cutoff in ``low_hz`` and low-pass at one in ``high_hz`` (Butterworth, ``order``)."""

    name = "bandlimit"

    def __init__(self, low_hz: float | Sequence[float] = (50.0, 400.0),
                 high_hz: float | Sequence[float] = (3000.0, 7500.0), order: int = 4, sample_rate: int = 16000,
                 p: float = 1.0):
        super().__init__(p)
        self.low_hz = _range(low_hz, "BandLimit low_hz", positive=True)
        self.high_hz = _range(high_hz, "BandLimit high_hz", positive=True)
        self.sample_rate = int(sample_rate)
        if not (self.low_hz[1] < self.high_hz[0] and self.high_hz[1] < self.sample_rate / 2):
            raise ConfigError(f"BandLimit: need low_hz < high_hz < {self.sample_rate / 2}")
        self.qs = butterworth_qs(order)

    def sample_params(self, generator, wave):
        return {"low": _uniform(generator, *self.low_hz), "high": _uniform(generator, *self.high_hz)}

    def apply(self, wave: Tensor, low: float, high: float) -> Tensor:
        sections = [butterworth_section(self.sample_rate, low, q, "highpass") for q in self.qs]
        sections += [butterworth_section(self.sample_rate, high, q, "lowpass") for q in self.qs]
        return _sosfilt(wave, sections)


#: Highest compression level passed to libsndfile: MP3 fails from about 0.99999 (found in training with
#: ``quality`` drawn from [0.3, 1.0)).
MAX_COMPRESSION_LEVEL = 0.999


@lru_cache(maxsize=None)
def available_codecs() -> tuple[str, ...]:
    """Codecs of :data:`CODECS` that this libsndfile can write."""
    subtypes = sf.available_subtypes()
    return tuple(name for name, (_, subtype, _) in CODECS.items() if subtype in subtypes)


def codec_round_trip(audio: np.ndarray, sample_rate: int, codec: str, quality: float = 0.5) -> np.ndarray:
    """Encode ``audio`` (1-D float) with ``codec`` in memory and decode it; same rate and length."""
    import soxr

    fmt, subtype, rate = CODECS[codec]
    if len(audio) == 0:  # libsndfile cannot encode nothing as MP3 or Opus
        return np.zeros(0, dtype=np.float32)
    rate = rate or sample_rate
    x = soxr.resample(audio, sample_rate, rate) if rate != sample_rate else audio
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = max(peak, 1.0)  # codecs take [-1, 1]
    buffer = io.BytesIO()
    # LAME (through libsndfile) refuses MP3 compression levels within about 1e-5 of 1.0
    level = min(float(quality), MAX_COMPRESSION_LEVEL) if subtype in ("MPEG_LAYER_III", "VORBIS", "OPUS") else None
    with sf.SoundFile(buffer, "w", samplerate=rate, channels=1, format=fmt, subtype=subtype,
                      compression_level=level) as f:
        f.write((x / scale).astype(np.float32))
    buffer.seek(0)
    y, _ = sf.read(buffer, dtype="float32")
    y = y * scale
    if rate != sample_rate:
        y = soxr.resample(y, rate, sample_rate)
    return _align(y.astype(np.float32), audio)


def _align(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 2048) -> np.ndarray:
    """Undo the codec's delay (MP3 and Opus add priming samples) and fit ``reference``'s length."""
    n = len(reference)
    if len(decoded) > n and np.any(reference):
        window = min(n, 16000)
        lags = range(0, min(max_lag, len(decoded) - n) + 1)
        scores = [float(np.dot(decoded[lag:lag + window], reference[:window])) for lag in lags]
        decoded = decoded[int(np.argmax(scores)):]
    out = np.zeros(n, dtype=np.float32)
    out[:min(n, len(decoded))] = decoded[:n]
    return out


class Codec(WaveAugment):
    """Round trip through a random codec of ``codecs`` (default: every one libsndfile writes), with a
    compression level in ``quality`` (0 best, 1 smallest) for MP3, Vorbis and Opus."""

    name = "codec"

    def __init__(self, codecs: Sequence[str] | None = None, quality: float | Sequence[float] = (0.3, 1.0),
                 sample_rate: int = 16000, p: float = 1.0):
        super().__init__(p)
        wanted = list(codecs) if codecs else list(available_codecs())
        unknown = [c for c in wanted if c not in CODECS]
        if unknown:
            raise ConfigError(f"Codec: unknown codec(s) {', '.join(unknown)}; known: {', '.join(CODECS)}")
        missing = [c for c in wanted if c not in available_codecs()]
        if missing:
            raise ConfigError(f"Codec: this libsndfile cannot write {', '.join(missing)}")
        if not wanted:
            raise ConfigError("Codec: no codec available")
        self.codecs = wanted
        self.quality = _range(quality, "Codec quality")
        self.sample_rate = int(sample_rate)

    def sample_params(self, generator, wave):
        return {"codec": self.codecs[_randint(generator, 0, len(self.codecs) - 1)],
                "quality": _uniform(generator, *self.quality)}

    def apply(self, wave: Tensor, codec: str, quality: float = 0.5) -> Tensor:
        flat = wave.reshape(-1, wave.shape[-1]).detach().cpu().numpy().astype(np.float32)
        out = np.stack([codec_round_trip(row, self.sample_rate, codec, quality) for row in flat])
        return _fit_length(torch.from_numpy(out).to(wave.dtype).reshape(wave.shape), wave.shape[-1])


class Clipping(WaveAugment):
    """Overdrive: raise the peak to ``overdrive_db`` above full scale, clip at 1, restore the level."""

    name = "clip"

    def __init__(self, overdrive_db: float | Sequence[float] = (0.0, 12.0), p: float = 1.0):
        super().__init__(p)
        self.overdrive_db = _range(overdrive_db, "Clipping overdrive_db")

    def sample_params(self, generator, wave):
        return {"overdrive_db": _uniform(generator, *self.overdrive_db)}

    def apply(self, wave: Tensor, overdrive_db: float) -> Tensor:
        peak = float(wave.abs().max())
        if peak <= 0:
            return wave
        gain = 10 ** (overdrive_db / 20) / peak
        return (wave * gain).clamp(-1.0, 1.0) / gain


CHANNEL_AUGMENTATIONS = {cls.name: cls for cls in (MicResponse, BandLimit, Codec, Clipping)}
