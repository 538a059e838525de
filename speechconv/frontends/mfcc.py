"""MFCC front-end: mel power -> dB -> DCT-II (orthonormal), keeping the first ``n_mfcc`` coefficients.

The log is librosa's ``power_to_db(S, ref=1.0, amin=log_floor, top_db=None)``, i.e.
``10 * log10(max(S, log_floor))``, and the DCT matrix is ``torchaudio.functional.create_dct(norm="ortho")``
(equal to ``scipy.fft.dct(type=2, norm="ortho")``). With the librosa-compatible mel power of
:mod:`speechconv.frontends.base` this equals ``librosa.feature.mfcc(S=power_to_db(mel, top_db=None))``.
librosa's default ``top_db=80`` clip depends on the utterance maximum and is not used, so MFCCs stream.
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio

from speechconv.errors import ConfigError
from speechconv.frontends.base import SpectrogramFrontend, State


def power_to_db(power: torch.Tensor, amin: float) -> torch.Tensor:
    """``10 * log10(max(power, amin))`` (librosa's ``power_to_db`` with ``ref=1``, ``top_db=None``)."""
    return 10.0 * torch.log10(torch.clamp(power, min=amin))


class MFCC(SpectrogramFrontend):
    """Mel-frequency cepstral coefficients, ``n_features = n_mfcc``.

    Parameters
    ----------
    n_mfcc:
        Number of cepstral coefficients kept (``<= n_mels``), including c0.
    log_floor:
        ``amin`` of the dB conversion (default 1e-10 as in librosa).
    **others:
        The common options of :class:`~speechconv.frontends.base.SpectrogramFrontend`.
    """

    name = "mfcc"

    def __init__(self, n_mels: int = 40, n_mfcc: int = 13, log_floor: float = 1e-10, **spectrogram: Any) -> None:
        if not (isinstance(n_mfcc, int) and isinstance(n_mels, int) and 0 < n_mfcc <= n_mels):
            raise ConfigError(f"mfcc front-end: n_mfcc must be in [1, n_mels={n_mels}], got {n_mfcc!r}")
        if not log_floor > 0:
            raise ConfigError(f"mfcc front-end: log_floor must be > 0, got {log_floor!r}")
        super().__init__(n_features=n_mfcc, n_mels=n_mels, **spectrogram)
        self.n_mfcc = n_mfcc
        self.log_floor = float(log_floor)
        # create_dct returns (n_mels, n_mfcc); store the (n_mfcc, n_mels) analysis matrix.
        dct = torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho").T.contiguous()
        self.register_buffer("dct", dct, persistent=False)

    def extra_config(self) -> dict[str, Any]:
        return {"n_mfcc": self.n_mfcc, "log_floor": self.log_floor}

    def features_from_mel(self, mel: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return self.matmul(self.dct, power_to_db(mel, self.log_floor)), state
