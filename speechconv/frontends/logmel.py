"""Log-mel front-end: ``log(max(mel_power, log_floor))`` with the natural log.

The mel power is computed as described in :mod:`speechconv.frontends.base` (librosa-compatible
Slaney mel scale and Slaney area normalization, causal uncentered frames).
"""

from __future__ import annotations

from typing import Any

import torch

from speechconv.errors import ConfigError
from speechconv.frontends.base import SpectrogramFrontend, State


def log_power(power: torch.Tensor, floor: float) -> torch.Tensor:
    """Natural log of ``power`` floored at ``floor`` (so silence maps to ``log(floor)``, not ``-inf``)."""
    return torch.log(torch.clamp(power, min=floor))


class LogMel(SpectrogramFrontend):
    """Log mel power spectrogram, ``n_features = n_mels``.

    Parameters
    ----------
    log_floor:
        Smallest mel power before the log (default 1e-6, i.e. about -13.8).
    **others:
        The common options of :class:`~speechconv.frontends.base.SpectrogramFrontend`.
    """

    name = "logmel"

    def __init__(self, n_mels: int = 40, log_floor: float = 1e-6, **spectrogram: Any) -> None:
        if not log_floor > 0:
            raise ConfigError(f"logmel front-end: log_floor must be > 0, got {log_floor!r}")
        super().__init__(n_features=n_mels, n_mels=n_mels, **spectrogram)
        self.log_floor = float(log_floor)

    def extra_config(self) -> dict[str, Any]:
        return {"log_floor": self.log_floor}

    def features_from_mel(self, mel: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return log_power(mel, self.log_floor), state
