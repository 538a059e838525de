"""Synthetic room impulse responses and reverberation-time measurement.

The generator models a room response as a direct-path impulse followed by a diffuse tail of
Gaussian noise under an exponential envelope (the statistical room-acoustics model behind
Schroeder's and Polack's work). Its energy falls by 60 dB in ``rt60`` seconds, and the ratio of
direct to tail energy is set by ``drr_db``. The tail is broadband: all frequencies decay at the
same rate (no air absorption), which keeps the requested RT60 exactly measurable.

``measure_rt60`` implements the standard check (ISO 3382): Schroeder backward integration of the
squared response, then a straight-line fit of the decay curve between -5 dB and -25 dB (T20) or
-35 dB (T30), extrapolated to 60 dB.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Amplitude decays as exp(-DECAY * t / rt60): the energy then drops 60 dB at t = rt60.
_DECAY = 3.0 * math.log(10.0)


def synthetic_rir(
    sample_rate: int,
    rt60: float,
    drr_db: float = 6.0,
    generator: torch.Generator | None = None,
    length_s: float | None = None,
    tail_delay_s: float = 0.002,
) -> Tensor:
    """Room impulse response with a given reverberation time and direct-to-reverberant ratio.

    Parameters
    ----------
    sample_rate : samples per second.
    rt60 : time (s) for the tail energy to fall by 60 dB.
    drr_db : direct-to-reverberant energy ratio, ``10 log10(E_direct / E_tail)``.
    generator : torch generator for the tail noise (reproducible when seeded).
    length_s : response length; default ``1.2 * rt60`` (72 dB of decay) plus the tail delay.
    tail_delay_s : gap between the direct path and the first diffuse reflection.

    Returns
    -------
    1-D float32 tensor; the direct path is a unit impulse at index 0.
    """
    if sample_rate <= 0:
        raise ValueError(f"synthetic_rir: sample_rate must be positive, got {sample_rate}")
    if rt60 <= 0:
        raise ValueError(f"synthetic_rir: rt60 must be positive, got {rt60}")
    if tail_delay_s < 0:
        raise ValueError(f"synthetic_rir: tail_delay_s must be >= 0, got {tail_delay_s}")
    if length_s is None:
        length_s = 1.2 * rt60 + tail_delay_s
    delay = int(round(tail_delay_s * sample_rate))
    n_tail = int(round(length_s * sample_rate)) - delay
    if n_tail < 1:
        raise ValueError(f"synthetic_rir: length_s={length_s} leaves no room for the reverberant tail")
    t = torch.arange(n_tail, dtype=torch.float64) / sample_rate
    noise = torch.randn(n_tail, generator=generator, dtype=torch.float64)
    tail = noise * torch.exp(-_DECAY * t / rt60)
    tail_energy = 10.0 ** (-drr_db / 10.0)  # the direct impulse has energy 1
    tail = tail * math.sqrt(tail_energy / float(tail.pow(2).sum()))
    rir = torch.zeros(delay + n_tail, dtype=torch.float64)
    rir[0] = 1.0
    rir[delay:] += tail
    return rir.to(torch.float32)


def schroeder_decay_db(rir: Tensor) -> Tensor:
    """Schroeder energy decay curve in dB: ``10 log10(sum_{k>=n} h[k]^2 / sum_k h[k]^2)``."""
    energy = rir.detach().to(torch.float64).pow(2)
    remaining = torch.flip(torch.cumsum(torch.flip(energy, [0]), 0), [0])
    total = remaining[0].clamp_min(torch.finfo(torch.float64).tiny)
    return 10.0 * torch.log10(remaining / total + 1e-300)


def measure_rt60(rir: Tensor, sample_rate: int, decay_db: float = 20.0, start_db: float = -5.0) -> float:
    """Reverberation time from a measured impulse response (T20 for ``decay_db=20``, T30 for 30).

    Fits a least-squares line to the Schroeder curve between ``start_db`` and ``start_db - decay_db``
    and returns the time that line needs to fall 60 dB.
    """
    if rir.dim() != 1:
        raise ValueError(f"measure_rt60: expected a 1-D impulse response, got shape {tuple(rir.shape)}")
    edc = schroeder_decay_db(rir)
    in_range = (edc <= start_db) & (edc >= start_db - decay_db)
    idx = torch.nonzero(in_range).flatten()
    if idx.numel() < 2:
        raise ValueError(f"measure_rt60: the decay curve never spans {start_db} to {start_db - decay_db} dB")
    t = idx.to(torch.float64) / sample_rate
    y = edc[idx]
    slope = float(((t - t.mean()) * (y - y.mean())).sum() / (t - t.mean()).pow(2).sum())
    if slope >= 0:
        raise ValueError("measure_rt60: the decay curve does not decay")
    return -60.0 / slope
