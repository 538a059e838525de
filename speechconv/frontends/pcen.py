"""Trainable per-channel energy normalization (PCEN, Wang et al. 2017, "Trainable frontend for robust
and far-field keyword spotting").

For the mel power ``E[t]`` of each channel::

    M[0] = E[0]
    M[t] = (1 - s) * M[t-1] + s * E[t]
    PCEN[t] = (E[t] / (eps + M[t]) ** alpha + delta) ** r - delta ** r

``alpha``, ``delta``, ``r`` and ``s`` are learnable per channel and stored as logs so they stay
positive; ``s`` is clamped to at most 1 so the smoother stays stable. With ``b = s`` this is
``librosa.pcen(E, gain=alpha, bias=delta, power=r, b=s, eps=eps, max_size=1)``. The smoother is a
plain per-frame recursion, identical offline and streaming (the stream's smoother state is
``state["pcen_smoother"]``, ``(B, n_mels)``). While tracing for export the recursion is computed by
:func:`pcen_smooth_scan` instead, whose graph does not depend on the number of frames.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from speechconv.errors import ConfigError
from speechconv.frontends.base import SpectrogramFrontend, State

SMOOTHER_KEY = "pcen_smoother"


def pcen_smooth(energy: torch.Tensor, s: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """First-order IIR smoother over the last axis of ``(B, C, T)`` energy.

    ``s`` is ``(C,)``; ``previous`` is ``M[t-1]`` ``(B, C)`` of the stream, or ``None`` at its start
    (then ``M[0] = E[0]``).
    """
    smoothed = []
    m = previous
    for t in range(energy.shape[-1]):
        e_t = energy[..., t]
        m = e_t if m is None else (1 - s) * m + s * e_t
        smoothed.append(m)
    return torch.stack(smoothed, dim=-1)


#: :func:`pcen_smooth_scan` is exact for up to 2 ** SCAN_LOG2_FRAMES frames per call (11 min at 100 fps).
SCAN_LOG2_FRAMES = 16


def pcen_smooth_scan(energy: torch.Tensor, s: torch.Tensor, previous: torch.Tensor | None,
                     log2_frames: int = SCAN_LOG2_FRAMES) -> torch.Tensor:
    """:func:`pcen_smooth` as a log-depth prefix scan, for graphs with a dynamic number of frames.

    ``M[t] = a^(t+1) M[-1] + sum_k a^(t-k) s E[k]`` with ``a = 1 - s``; the sum is built by doubling
    (Hillis-Steele): after step ``j`` each frame holds the terms of its last ``2^(j+1)`` frames. The same
    values as the loop up to float rounding, for ``T <= 2 ** log2_frames`` frames.
    """
    dtype = energy.dtype
    energy, s = energy.to(torch.float64), s.to(torch.float64)  # sums in another order: keep them exact
    previous = energy[..., 0] if previous is None else previous.to(torch.float64)  # M[-1] = E[0] gives M[0] = E[0]
    log_a = torch.log1p(-s)[:, None]  # (C, 1)
    x = s[:, None] * energy
    for j in range(log2_frames):
        d = 1 << j
        # x[t - d], zero before the start (the slices clamp when T < d, in torch and ONNX alike)
        shifted = torch.cat([torch.zeros_like(x[..., :d]), x[..., :-d]], dim=-1)
        x = x + torch.exp(log_a * d) * shifted
    frames = torch.cumsum(torch.ones_like(energy[0, :1]), dim=-1)  # 1 .. T, (1, T), from the input shape
    return (x + torch.exp(log_a * frames) * previous[..., None]).to(dtype)


def pcen_compress(
    energy: torch.Tensor,
    smoothed: torch.Tensor,
    alpha: torch.Tensor,
    delta: torch.Tensor,
    r: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """``(E / (eps + M) ** alpha + delta) ** r - delta ** r`` with ``(C,)`` parameters on ``(B, C, T)``."""
    alpha, delta, r = alpha[:, None], delta[:, None], r[:, None]
    return (energy / (eps + smoothed) ** alpha + delta) ** r - delta**r


class PCEN(SpectrogramFrontend):
    """Mel power followed by trainable PCEN, ``n_features = n_mels``.

    Parameters
    ----------
    alpha, delta, r, s:
        Initial values (shared by all channels) of the gain exponent, bias, root and smoothing
        coefficient. Defaults follow the paper's initialization.
    eps:
        Stabilizer in ``(eps + M) ** alpha``.
    trainable:
        Whether the four parameters get gradients.
    **others:
        The common options of :class:`~speechconv.frontends.base.SpectrogramFrontend`.
    """

    name = "pcen"

    def __init__(self, n_mels: int = 40, alpha: float = 0.98, delta: float = 2.0, r: float = 0.5, s: float = 0.025,
                 eps: float = 1e-6, trainable: bool = True, **spectrogram: Any) -> None:
        for label, value in (("alpha", alpha), ("delta", delta), ("r", r), ("eps", eps)):
            if not value > 0:
                raise ConfigError(f"pcen front-end: {label} must be > 0, got {value!r}")
        if not 0 < s <= 1:
            raise ConfigError(f"pcen front-end: s must be in (0, 1], got {s!r}")
        super().__init__(n_features=n_mels, n_mels=n_mels, **spectrogram)
        self.init_values = {"alpha": float(alpha), "delta": float(delta), "r": float(r), "s": float(s)}
        self.eps = float(eps)
        self.trainable = bool(trainable)
        self.log_alpha = self._log_parameter(alpha)
        self.log_delta = self._log_parameter(delta)
        self.log_r = self._log_parameter(r)
        self.log_s = self._log_parameter(s)

    def _log_parameter(self, value: float) -> nn.Parameter:
        return nn.Parameter(torch.full((self.n_mels,), math.log(value)), requires_grad=self.trainable)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    @property
    def delta(self) -> torch.Tensor:
        return self.log_delta.exp()

    @property
    def r(self) -> torch.Tensor:
        return self.log_r.exp()

    @property
    def s(self) -> torch.Tensor:
        return self.log_s.exp().clamp(max=1.0)

    def extra_config(self) -> dict[str, Any]:
        return {**self.init_values, "eps": self.eps, "trainable": self.trainable}

    def features_from_mel(self, mel: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if mel.shape[-1] == 0:
            return mel.new_zeros(mel.shape), state
        previous = state.get(SMOOTHER_KEY)
        if previous is not None and previous.shape != mel.shape[:2]:
            raise ValueError(
                f"state['{SMOOTHER_KEY}'] has shape {tuple(previous.shape)}, expected {tuple(mel.shape[:2])}"
            )
        smooth = pcen_smooth_scan if torch.jit.is_tracing() else pcen_smooth
        smoothed = smooth(mel, self.s, previous)
        features = pcen_compress(mel, smoothed, self.alpha, self.delta, self.r, self.eps)
        return features, {**state, SMOOTHER_KEY: smoothed[..., -1]}
