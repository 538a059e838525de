"""Pure signal functions of the augmentation ops: resampling, lengths, power, SNR mixing, biquads."""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torchaudio.functional as AF
from torch import Tensor

from speechconv.audio.activity import active_power


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
    return active_power(x.cpu().numpy(), sample_rate, -threshold_db)


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
