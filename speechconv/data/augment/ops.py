"""Waveform ops: gain, time shift, speed, tempo, pitch, formants, reverb, telephone band."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchaudio.functional as AF
from torch import Tensor

from speechconv.data.augment.base import WaveAugment
from speechconv.data.augment.dsp import (
    _biquad,
    _fit_length,
    _ratio,
    _resample_by,
    _rms,
    butterworth_qs,
)
from speechconv.data.augment.sampling import _randint, _range, _uniform
from speechconv.data.rir import synthetic_rir
from speechconv.errors import ConfigError


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
    ``r`` is rounded to a fraction with denominator <= ``max_denominator``. That rounding is why this is
    not ``torchaudio.functional.pitch_shift``, which resamples between ``int(sr / r)`` and ``sr``: for
    fractional semitones their ratio has a large denominator, and one 1.5 s clip took 0.37-41 s there
    against 20-24 ms here (measured on this machine, 1 thread).
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
        flat = wave.reshape(-1, n)
        if n < self.n_fft:  # reflect padding in stft needs n > n_fft // 2; zero-pad short clips
            flat = _fit_length(flat, self.n_fft)
        longer = _stretch(flat, float(ratio), self.n_fft)
        out = _fit_length(_resample_by(longer, ratio), n)
        return out.reshape(wave.shape)


def _stretch(flat: Tensor, factor: float, n_fft: int) -> Tensor:
    """Phase-vocoder time stretch of ``(batch, n)`` to ``round(n * factor)`` samples, pitch kept."""
    hop = n_fft // 4
    window = torch.hann_window(n_fft, dtype=flat.dtype)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2], dtype=flat.dtype)[..., None]
    stretched = AF.phase_vocoder(spec, 1.0 / factor, advance)
    return torch.istft(stretched, n_fft, hop, window=window, length=int(round(flat.shape[-1] * factor)))


class TempoPerturb(WaveAugment):
    """Change the speaking rate by ``rate`` (uniform in the range) keeping pitch and formants.

    Phase-vocoder time stretch (as :class:`PitchShift`, without its resampling): the output lasts
    ``T / rate``. Real speakers say wake words slower than TTS voices do, which speed perturbation
    can only reach by also lowering every frequency. Like ``speed`` it changes the length; put it in
    a datamodule's ``recording_augment`` so it runs before the clip is cut and the keyword's span
    moves with it.
    """

    name = "tempo"

    def __init__(
        self,
        rate: float | Sequence[float] = (0.7, 1.1),
        sample_rate: int = 16000,
        n_fft: int | None = None,
        max_denominator: int = 100,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.rate = _range(rate, "TempoPerturb rate", positive=True)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft) if n_fft else _stft_size(self.sample_rate)
        self.max_denominator = int(max_denominator)

    def sample_params(self, generator, wave):
        return {"rate": float(_ratio(_uniform(generator, *self.rate), self.max_denominator))}

    def apply(self, wave: Tensor, rate: float) -> Tensor:
        if rate == 1:
            return wave
        n = wave.shape[-1]
        flat = wave.reshape(-1, n)
        if n < self.n_fft:  # stft's reflect padding needs more samples; the zeros are cut again below
            flat = _fit_length(flat, self.n_fft)
        out = _stretch(flat, 1.0 / rate, self.n_fft)[..., : int(round(n / rate))]
        return out.reshape(*wave.shape[:-1], out.shape[-1])


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
