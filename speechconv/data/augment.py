"""On-the-fly waveform augmentation, seeded and built from config.

Every op is a small class: keyword-only parameters with defaults (ranges as ``(lo, hi)``), an
application probability ``p``, and ``__call__(wave, generator) -> wave``. ``wave`` is a float
tensor with time on the last axis (mono ``(T,)``; leading dims share one random draw). All
randomness comes from the passed ``torch.Generator``; DataLoader workers build it with
``make_generator(base_seed, epoch, index)`` so an example's augmentation is reproducible no
matter which worker handles it.

Each op splits into ``sample_params(generator, wave) -> dict`` (all random draws) and
``apply(wave, **params)`` (deterministic), so tests and tools can apply exact parameters.

``build_augment`` turns config such as::

    [{"name": "noise", "noise_dir": "data/noise", "snr_db": [0, 20], "p": 0.8},
     {"name": "speed", "factors": [0.9, 1.1], "p": 0.5}]

into a ``Compose`` chain; ``AUGMENTATIONS`` maps config names to classes. Feature-level ops
(``SpecAugment``, ``VTLP``) live in ``speechconv.data.specaugment``; build them with
``build_feature_augment``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio.functional as AF
from torch import Tensor

from speechconv.audio.discover import AUDIO_EXTENSIONS
from speechconv.data.rir import synthetic_rir
from speechconv.data.specaugment import VTLP, SpecAugment
from speechconv.errors import ConfigError, SpeechconvError

__all__ = [
    "AUGMENTATIONS",
    "FEATURE_AUGMENTATIONS",
    "AddNoise",
    "Compose",
    "FormantShift",
    "Gain",
    "PitchShift",
    "Reverb",
    "SpecAugment",
    "SpeedPerturb",
    "TelephoneBand",
    "TimeShift",
    "VTLP",
    "WaveAugment",
    "build_augment",
    "build_feature_augment",
    "butterworth_qs",
    "make_generator",
    "mix_at_snr",
    "signal_power",
]

AUDIO_SUFFIXES = AUDIO_EXTENSIONS  # one list of audio suffixes, speechconv.audio's


# ---------------------------------------------------------------- seeding and sampling helpers


def make_generator(base_seed: int, epoch: int, index: int) -> torch.Generator:
    """Generator seeded from (base_seed, epoch, index), well mixed so nearby triples are independent."""
    state = np.random.SeedSequence([int(base_seed), int(epoch), int(index)]).generate_state(2, np.uint32)
    seed = (int(state[0]) << 31) ^ int(state[1])  # 63 bits: always a valid manual_seed
    return torch.Generator().manual_seed(seed)


def _uniform(generator: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator | None, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (1,), generator=generator))


def _range(value: float | Sequence[float], name: str, positive: bool = False) -> tuple[float, float]:
    """A ``(lo, hi)`` range; a single number means that fixed value."""
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        if len(value) != 2:
            raise ConfigError(f"{name} must be a number or a [lo, hi] pair, got {value!r}")
        lo, hi = float(value[0]), float(value[1])
    if hi < lo or (positive and lo <= 0):
        raise ConfigError(f"{name} must satisfy {'0 < ' if positive else ''}lo <= hi, got {value!r}")
    return lo, hi


def _ratio(value: float, max_denominator: int) -> Fraction:
    """Rational approximation of a resampling ratio (keeps torchaudio's polyphase kernel small)."""
    return Fraction(value).limit_denominator(max_denominator)


def _resample_by(wave: Tensor, ratio: Fraction) -> Tensor:
    """Resample so the length becomes ``len / ratio`` (``ratio = orig / new``)."""
    if ratio == 1:
        return wave
    return AF.resample(wave, ratio.numerator, ratio.denominator)


def _fit_length(wave: Tensor, n: int) -> Tensor:
    if wave.shape[-1] >= n:
        return wave[..., :n]
    return torch.nn.functional.pad(wave, (0, n - wave.shape[-1]))


def _check_wave(wave: Tensor, op: str) -> Tensor:
    if not isinstance(wave, Tensor) or wave.dim() == 0 or not wave.is_floating_point():
        desc = f"{wave.dtype} {tuple(wave.shape)}" if isinstance(wave, Tensor) else type(wave).__name__
        raise ValueError(f"{op}: expected a float waveform tensor with time on the last axis, got {desc}")
    return wave


def _rms(wave: Tensor) -> Tensor:
    return wave.pow(2).mean().sqrt()


# ---------------------------------------------------------------- pure signal functions


def signal_power(
    wave: Tensor, mode: str = "clip", sample_rate: int = 16000, threshold_db: float = 30.0
) -> float:
    """Mean power of ``wave``.

    ``mode="clip"`` averages over the whole clip. ``mode="active"`` averages over 20 ms frames whose
    energy lies within ``threshold_db`` of the loudest frame: a simple stand-in for ITU-T P.56
    active speech level, so leading/trailing silence does not lower the SNR reference.
    """
    x = wave.detach().to(torch.float64).reshape(-1, wave.shape[-1])
    if mode == "clip":
        return float(x.pow(2).mean())
    if mode != "active":
        raise ValueError(f"signal_power: mode must be 'clip' or 'active', got {mode!r}")
    frame = max(1, int(0.02 * sample_rate))
    n_frames = max(1, x.shape[-1] // frame)
    frames = _fit_length(x, n_frames * frame).reshape(x.shape[0], n_frames, frame)
    energy = frames.pow(2).mean(dim=(0, 2))
    if float(energy.max()) == 0.0:
        return 0.0
    active = energy >= energy.max() * 10.0 ** (-threshold_db / 10.0)
    return float(energy[active].mean())


def mix_at_snr(signal: Tensor, noise: Tensor, snr_db: float, signal_pow: float | None = None) -> Tensor:
    """``signal + g * noise`` with ``g`` chosen so ``10 log10(P_signal / P(g * noise)) = snr_db``.

    Powers are means of squares over the whole clip unless ``signal_pow`` is given (e.g. from
    ``signal_power(..., mode="active")``). ``noise`` must have the signal's length. A silent signal
    or silent noise returns the signal unchanged.
    """
    if noise.shape[-1] != signal.shape[-1]:
        raise ValueError(f"mix_at_snr: noise has {noise.shape[-1]} samples, signal {signal.shape[-1]}")
    p_signal = signal_power(signal) if signal_pow is None else float(signal_pow)
    p_noise = signal_power(noise)
    if p_signal == 0.0 or p_noise == 0.0:
        return signal.clone()
    gain = math.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return signal + gain * noise.to(signal.dtype)


def butterworth_qs(order: int) -> list[float]:
    """Q factors of the second-order sections of an even-order Butterworth filter."""
    if order < 2 or order % 2:
        raise ValueError(f"Butterworth order must be even and >= 2, got {order}")
    return [1.0 / (2.0 * math.sin((2 * k - 1) * math.pi / (2 * order))) for k in range(1, order // 2 + 1)]


def _biquad(wave: Tensor, sample_rate: int, cutoff_hz: float, q: float, kind: str) -> Tensor:
    """RBJ-cookbook low/high-pass section, filtered without torchaudio's [-1, 1] output clamp."""
    w0 = 2.0 * math.pi * cutoff_hz / sample_rate
    alpha = math.sin(w0) / (2.0 * q)
    cos_w0 = math.cos(w0)
    if kind == "lowpass":
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
    else:
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    a_t = torch.tensor(a, dtype=wave.dtype)
    b_t = torch.tensor(b, dtype=wave.dtype)
    return AF.lfilter(wave, a_t, b_t, clamp=False)


# ---------------------------------------------------------------- base class and chain


class WaveAugment:
    """Base: flip a ``p`` coin, then ``apply(wave, **sample_params(generator, wave))``."""

    name: ClassVar[str] = ""

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = float(p)

    def sample_params(self, generator: torch.Generator | None, wave: Tensor) -> dict[str, Any]:
        return {}

    def apply(self, wave: Tensor, **params: Any) -> Tensor:
        raise NotImplementedError

    def __call__(self, wave: Tensor, generator: torch.Generator | None = None) -> Tensor:
        wave = _check_wave(wave, type(self).__name__)
        # The coin is drawn even for p = 1, so the stream layout does not depend on the value of p.
        if float(torch.rand((), generator=generator)) >= self.p:
            return wave
        return self.apply(wave, **self.sample_params(generator, wave))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose:
    """Apply ops in order, all drawing from the same generator."""

    def __init__(self, ops: Sequence[Callable[[Tensor, torch.Generator | None], Tensor]]) -> None:
        self.ops = list(ops)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for op in self.ops:
            x = op(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(op) for op in self.ops) + "])"


# ---------------------------------------------------------------- ops


class Gain(WaveAugment):
    """Scale by a gain drawn uniformly in dB from ``db=(lo, hi)``."""

    name = "gain"

    def __init__(self, db: float | Sequence[float] = (-6.0, 6.0), p: float = 1.0) -> None:
        super().__init__(p)
        self.db = _range(db, "Gain db")

    def sample_params(self, generator, wave):
        return {"db": _uniform(generator, *self.db)}

    def apply(self, wave: Tensor, db: float) -> Tensor:
        return wave * 10.0 ** (db / 20.0)


class TimeShift(WaveAugment):
    """Shift by up to ``max_shift_s`` either way; ``mode="zero"`` fills with silence, ``"roll"`` wraps."""

    name = "shift"

    def __init__(
        self, max_shift_s: float = 0.1, mode: str = "zero", sample_rate: int = 16000, p: float = 1.0
    ) -> None:
        super().__init__(p)
        if max_shift_s < 0:
            raise ConfigError(f"TimeShift: max_shift_s must be >= 0, got {max_shift_s}")
        if mode not in ("zero", "roll"):
            raise ConfigError(f"TimeShift: mode must be 'zero' or 'roll', got {mode!r}")
        self.max_shift_s = float(max_shift_s)
        self.mode = mode
        self.sample_rate = int(sample_rate)

    def sample_params(self, generator, wave):
        limit = min(int(round(self.max_shift_s * self.sample_rate)), wave.shape[-1])
        return {"shift": _randint(generator, -limit, limit)}

    def apply(self, wave: Tensor, shift: int) -> Tensor:
        if self.mode == "roll":
            return torch.roll(wave, shift, dims=-1)
        out = torch.zeros_like(wave)
        n = wave.shape[-1]
        if shift >= 0:
            out[..., shift:] = wave[..., : n - shift]
        else:
            out[..., : n + shift] = wave[..., -shift:]
        return out


class SpeedPerturb(WaveAugment):
    """Kaldi-style speed perturbation: resample so playback runs ``factor`` times faster.

    Duration becomes ``T / factor`` and every frequency (pitch and formants) is multiplied by
    ``factor``. ``factors=(lo, hi)`` draws uniformly; with ``discrete=True`` one of the listed
    values is picked (Kaldi's ``(0.9, 1.0, 1.1)``). Factors are rounded to fractions with
    denominator <= ``max_denominator`` so the polyphase resampler stays cheap.
    """

    name = "speed"

    def __init__(
        self,
        factors: Sequence[float] = (0.9, 1.1),
        discrete: bool = False,
        max_denominator: int = 100,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.factors = tuple(float(f) for f in factors)
        if not self.factors or min(self.factors) <= 0:
            raise ConfigError(f"SpeedPerturb: factors must be positive, got {factors!r}")
        if not discrete:
            self.factors = _range(self.factors, "SpeedPerturb factors", positive=True)
        self.discrete = bool(discrete)
        self.max_denominator = int(max_denominator)

    def sample_params(self, generator, wave):
        if self.discrete:
            factor = self.factors[_randint(generator, 0, len(self.factors) - 1)]
        else:
            factor = _uniform(generator, *self.factors)
        return {"factor": float(_ratio(factor, self.max_denominator))}

    def apply(self, wave: Tensor, factor: float) -> Tensor:
        return _resample_by(wave, _ratio(factor, self.max_denominator))


def _stft_size(sample_rate: int) -> int:
    """Power-of-two FFT size of about 32 ms."""
    return 2 ** int(round(math.log2(0.032 * sample_rate)))


class PitchShift(WaveAugment):
    """Shift pitch by ``semitones`` (uniform in the range) keeping the duration.

    Method (as librosa / torchaudio): phase-vocoder time stretch by ``r = 2^(st/12)``, then resample by
    ``r`` back to the original length. The whole spectrum (pitch and formants) scales by ``r``.
    ``r`` is rounded to a fraction with denominator <= ``max_denominator``.
    """

    name = "pitch"

    def __init__(
        self,
        semitones: float | Sequence[float] = (-2.0, 2.0),
        sample_rate: int = 16000,
        n_fft: int | None = None,
        max_denominator: int = 100,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.semitones = _range(semitones, "PitchShift semitones")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft) if n_fft else _stft_size(self.sample_rate)
        self.max_denominator = int(max_denominator)

    def sample_params(self, generator, wave):
        return {"semitones": _uniform(generator, *self.semitones)}

    def apply(self, wave: Tensor, semitones: float) -> Tensor:
        ratio = _ratio(2.0 ** (semitones / 12.0), self.max_denominator)
        if ratio == 1:
            return wave
        n = wave.shape[-1]
        hop = self.n_fft // 4
        window = torch.hann_window(self.n_fft, dtype=wave.dtype)
        flat = wave.reshape(-1, n)
        if n < self.n_fft:  # reflect padding in stft needs n > n_fft // 2; zero-pad short clips
            flat = _fit_length(flat, self.n_fft)
        spec = torch.stft(flat, self.n_fft, hop, window=window, center=True, return_complex=True)
        advance = torch.linspace(0, math.pi * hop, spec.shape[-2], dtype=wave.dtype)[..., None]
        stretched = AF.phase_vocoder(spec, 1.0 / float(ratio), advance)
        longer = torch.istft(
            stretched, self.n_fft, hop, window=window, length=int(round(flat.shape[-1] * float(ratio)))
        )
        out = _fit_length(_resample_by(longer, ratio), n)
        return out.reshape(wave.shape)


class FormantShift(WaveAugment):
    """Move formants by ``ratio`` (uniform in the range) while keeping pitch and duration.

    Method: short-time source-filter split with the cepstral "true envelope" (Imai & Abe 1979;
    Roebel & Rodet 2005). Per STFT frame the log envelope is cepstrally smoothed (quefrencies below
    ``lifter_ms``), then re-smoothed ``iterations`` times against ``max(log|X|, envelope)`` so it
    rides on the harmonic peaks instead of averaging into the valleys. The envelope is warped along
    frequency, ``E'(f) = E(f / ratio)``, and the magnitude becomes ``|X| * E' / E``. Harmonics (fine
    structure) and phases are untouched, so pitch stays and formants move by ``ratio``. ``lifter_ms``
    must stay below the shortest pitch period (2 ms suits f0 up to 500 Hz). The clip RMS is kept.
    """

    name = "formant"

    def __init__(
        self,
        ratio: float | Sequence[float] = (0.9, 1.1),
        sample_rate: int = 16000,
        n_fft: int | None = None,
        lifter_ms: float = 2.0,
        iterations: int = 8,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.ratio = _range(ratio, "FormantShift ratio", positive=True)
        if iterations < 0:
            raise ConfigError(f"FormantShift: iterations must be >= 0, got {iterations}")
        self.iterations = int(iterations)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft) if n_fft else _stft_size(self.sample_rate)
        self.lifter = max(1, int(round(lifter_ms * 1e-3 * self.sample_rate)))
        self._smoother: Tensor | None = None
        if self.lifter >= self.n_fft // 2:
            raise ConfigError(f"FormantShift: lifter_ms={lifter_ms} is too long for n_fft={self.n_fft}")

    def sample_params(self, generator, wave):
        return {"ratio": _uniform(generator, *self.ratio)}

    def smoothing_matrix(self) -> Tensor:
        """Cepstral smoothing as a ``(bins, bins)`` matrix: ``rfft(lifter * irfft(log_mag))``.

        The map is linear in the (real) log magnitude, so it is built once by applying it to the
        identity; each true-envelope iteration is then one small matmul instead of two FFTs.
        """
        if self._smoother is None:
            n_bins = self.n_fft // 2 + 1
            cep = torch.fft.irfft(torch.eye(n_bins, dtype=torch.float64), n=self.n_fft, dim=0)
            lifter = torch.zeros(self.n_fft, 1, dtype=torch.float64)
            lifter[: self.lifter] = 1.0
            lifter[-self.lifter + 1 :] = 1.0  # the real cepstrum is symmetric
            self._smoother = torch.fft.rfft(cep * lifter, dim=0).real
        return self._smoother

    def log_envelope(self, log_mag: Tensor) -> Tensor:
        """True-envelope estimate of a log magnitude ``(..., bins, frames)``."""
        smooth = self.smoothing_matrix().to(log_mag.dtype)
        env = smooth @ log_mag
        for _ in range(self.iterations):
            env = smooth @ torch.maximum(log_mag, env)
        return env

    def apply(self, wave: Tensor, ratio: float) -> Tensor:
        if ratio == 1.0:
            return wave
        n = wave.shape[-1]
        hop = self.n_fft // 4
        window = torch.hann_window(self.n_fft, dtype=wave.dtype)
        flat = _fit_length(wave.reshape(-1, n), max(n, self.n_fft))
        spec = torch.stft(flat, self.n_fft, hop, window=window, center=True, return_complex=True)
        log_mag = torch.log(spec.abs() + 1e-8)
        env = self.log_envelope(log_mag)
        # E'(f) = E(f / ratio): linear interpolation along the bin axis, clamped at Nyquist.
        n_bins = env.shape[-2]
        src = (torch.arange(n_bins, dtype=torch.float64) / ratio).clamp(max=n_bins - 1)
        lo = src.floor().long()
        hi = (lo + 1).clamp(max=n_bins - 1)
        frac = (src - lo).to(env.dtype)[:, None]
        warped = env[..., lo, :] * (1 - frac) + env[..., hi, :] * frac
        shifted = spec * torch.exp(warped - env)
        out = torch.istft(shifted, self.n_fft, hop, window=window, length=flat.shape[-1])[..., :n]
        out = out.reshape(wave.shape)
        out_rms = _rms(out)
        return out * (_rms(wave) / out_rms) if out_rms > 0 else out


class Reverb(WaveAugment):
    """Convolve with a synthetic room impulse response (``speechconv.data.rir.synthetic_rir``).

    RT60 and direct-to-reverberant ratio are drawn uniformly from their ranges. The output keeps the
    input length (the RIR's direct path is at lag 0, so nothing is delayed) and, with
    ``keep_rms=True``, the input RMS.
    """

    name = "reverb"

    def __init__(
        self,
        rt60: float | Sequence[float] = (0.2, 0.8),
        drr_db: float | Sequence[float] = (0.0, 12.0),
        tail_delay_s: float = 0.002,
        keep_rms: bool = True,
        sample_rate: int = 16000,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.rt60 = _range(rt60, "Reverb rt60", positive=True)
        self.drr_db = _range(drr_db, "Reverb drr_db")
        self.tail_delay_s = float(tail_delay_s)
        self.keep_rms = bool(keep_rms)
        self.sample_rate = int(sample_rate)

    def sample_params(self, generator, wave):
        rt60 = _uniform(generator, *self.rt60)
        drr_db = _uniform(generator, *self.drr_db)
        rir = synthetic_rir(self.sample_rate, rt60, drr_db, generator, tail_delay_s=self.tail_delay_s)
        return {"rir": rir}

    def apply(self, wave: Tensor, rir: Tensor) -> Tensor:
        out = AF.fftconvolve(wave, rir.to(wave.dtype))[..., : wave.shape[-1]]
        if self.keep_rms:
            out_rms = _rms(out)
            if out_rms > 0:
                out = out * (_rms(wave) / out_rms)
        return out


class TelephoneBand(WaveAugment):
    """Narrow-band telephone channel.

    Downsample to ``codec_rate`` (8 kHz), band-pass ``low_hz``..``high_hz`` with Butterworth
    high- and low-pass filters of ``order``, optionally a G.711-style mu-law round trip (8 bit),
    then resample back. The input rate is kept; nothing above ``codec_rate / 2`` survives.
    """

    name = "telephone"

    def __init__(
        self,
        sample_rate: int = 16000,
        codec_rate: int = 8000,
        low_hz: float = 300.0,
        high_hz: float = 3400.0,
        order: int = 4,
        mu_law: bool = True,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        if not 0 < low_hz < high_hz < codec_rate / 2:
            raise ConfigError(
                "TelephoneBand: need 0 < low_hz < high_hz < codec_rate/2, "
                f"got {low_hz}, {high_hz}, {codec_rate}"
            )
        if codec_rate > sample_rate:
            raise ConfigError(f"TelephoneBand: codec_rate {codec_rate} exceeds sample_rate {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.codec_rate = int(codec_rate)
        self.low_hz = float(low_hz)
        self.high_hz = float(high_hz)
        self.qs = butterworth_qs(order)
        self.order = int(order)
        self.mu_law = bool(mu_law)

    def _resample(self, wave: Tensor, orig: int, new: int) -> Tensor:
        # A long Kaiser-windowed sinc: strong stop band so nothing aliases into the telephone band.
        return AF.resample(
            wave,
            orig,
            new,
            lowpass_filter_width=24,
            rolloff=0.95,
            resampling_method="sinc_interp_kaiser",
            beta=12.0,
        )

    def apply(self, wave: Tensor) -> Tensor:
        n = wave.shape[-1]
        x = self._resample(wave, self.sample_rate, self.codec_rate)
        for q in self.qs:
            x = _biquad(x, self.codec_rate, self.low_hz, q, "highpass")
            x = _biquad(x, self.codec_rate, self.high_hz, q, "lowpass")
        if self.mu_law:
            scale = float(x.abs().max().clamp_min(1.0))  # codec input must lie in [-1, 1]
            codes = AF.mu_law_encoding(x / scale, 256)
            x = AF.mu_law_decoding(codes, 256).to(wave.dtype) * scale
        return _fit_length(self._resample(x, self.codec_rate, self.sample_rate), n)


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


# ---------------------------------------------------------------- registry and config


AUGMENTATIONS: dict[str, type[WaveAugment]] = {
    cls.name: cls
    for cls in (AddNoise, TimeShift, SpeedPerturb, PitchShift, FormantShift, Gain, Reverb, TelephoneBand)
}
FEATURE_AUGMENTATIONS: dict[str, type] = {"specaugment": SpecAugment, "vtlp": VTLP}


def _build_op(spec: Mapping[str, Any], registry: Mapping[str, type], defaults: Mapping[str, Any]):
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"augmentation entry must be a mapping with a 'name' key, got {spec!r}")
    name = spec["name"]
    if name not in registry:
        raise ConfigError(f"unknown augmentation {name!r}; known: {', '.join(sorted(registry))}")
    cls = registry[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"augmentation {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    for key, value in defaults.items():
        if key in accepted:
            kwargs.setdefault(key, value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"augmentation {name!r}: {err}") from err


def _entries(config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> list:
    if config is None:
        return []
    if isinstance(config, Mapping):
        return list(config["ops"]) if "ops" in config else [config]
    return list(config)


def build_augment(
    config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None, sample_rate: int = 16000
) -> Compose:
    """Waveform chain from config: a list of ``{"name": ..., **options}``, one such mapping, or
    ``{"ops": [...]}``. ``sample_rate`` is passed to every op that takes one, unless set."""
    from speechconv.data.channel import CHANNEL_AUGMENTATIONS  # channel ops build on this module

    registry = {**AUGMENTATIONS, **CHANNEL_AUGMENTATIONS}
    return Compose([_build_op(e, registry, {"sample_rate": sample_rate}) for e in _entries(config)])


def build_feature_augment(config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> Compose:
    """Spectrogram chain (``specaugment``, ``vtlp``) from config in the same format."""
    return Compose([_build_op(e, FEATURE_AUGMENTATIONS, {}) for e in _entries(config)])
