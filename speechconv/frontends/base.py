"""Shared machinery of the spectrogram front-ends: causal framing, mel power, streaming.

Framing
-------
Causal and uncentered: frame ``k`` covers samples ``[k * hop, k * hop + n_fft)``, so a waveform of
``T`` samples gives ``num_frames(T) = 0 if T < n_fft else (T - n_fft) // hop + 1`` frames. A
``win_length < n_fft`` window is zero-padded to ``n_fft`` in the middle (as torch.stft and librosa do).

Mel power
---------
``torchaudio.transforms.Spectrogram(center=False, power=2.0)`` followed by
``torchaudio.transforms.MelScale(norm="slaney", mel_scale="slaney")``. These settings reproduce
``librosa.feature.melspectrogram(center=False, power=2.0)`` with librosa's defaults
(``htk=False``, ``norm="slaney"``); the periodic torch windows equal librosa's ``fftbins=True`` ones.
The filterbank product (and MFCC's DCT) is exact: accumulated in float64 and rounded once to float32
(:mod:`speechconv.frontends.functional`), so a frame's features do not depend on how many frames are
computed together. Inside :meth:`SpectrogramFrontend.fast_numerics` (the training step) a front-end uses one
float32 product per batch instead (:func:`~speechconv.frontends.functional.fast_matmul`): cheaper, and
equal to float32 precision (``tests/test_frontends.py`` bounds it).

Streaming
---------
``stream(chunk, state)`` keeps the samples that do not yet complete a frame in
``state["samples"]`` (``(B, L)``, ``0 <= L < n_fft``), plus any state of the subclass (PCEN's smoother).
Concatenating the frames of all steps gives exactly the offline frames. With chunks of ``k * hop``
samples the tail settles at ``L = hop * ceil((n_fft - hop) / hop)`` samples as soon as the first frame
is out (from the first step when ``k * hop >= n_fft``), so every state tensor keeps its shape from step
to step, as a fixed-shape (e.g. ONNX) streaming step needs. No zeros are ever fed in.
Run streams under ``torch.no_grad()``: otherwise PCEN's smoother state keeps the autograd graph of
every earlier step. The STFT is complex, which ONNX opset graphs cannot hold, so export switches its copy
of the front-end to the matmul STFT (:meth:`SpectrogramFrontend.use_matmul_stft`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
import torchaudio
from torch import nn

from speechconv.errors import ConfigError
from speechconv.frontends.functional import (
    band_groups,
    banded_matmul,
    fast_matmul,
    frame_matmul,
    num_frames,
    spectral_power,
)
from speechconv.frontends.normalization import FeatureNormalizer

WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window}

State = dict[str, torch.Tensor]


def positive_int_checks(**values: Any) -> list[tuple[bool, str]]:
    """``(ok, message)`` pairs checking that each value is a positive int."""
    return [
        (isinstance(value, int) and value > 0, f"{label} must be a positive int, got {value!r}")
        for label, value in values.items()
    ]


def as_batch(wave: torch.Tensor, what: str = "waveform") -> torch.Tensor:
    """Return a float32 ``(B, T)`` view of a ``(T,)`` or ``(B, T)`` floating-point waveform."""
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(wave).__name__}")
    if not wave.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor scaled to [-1, 1], got dtype {wave.dtype}")
    if wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2:
        raise ValueError(f"{what} must have shape (T,) or (B, T), got {tuple(wave.shape)}")
    return wave.to(torch.float32)


class SpectrogramFrontend(nn.Module):
    """Base class: waveform -> mel power -> subclass features -> optional normalization.

    Subclasses set :attr:`name`, pass ``n_features`` and implement :meth:`features_from_mel`.

    Parameters
    ----------
    sample_rate:
        Input sample rate in Hz.
    n_fft:
        FFT size and frame length in samples.
    win_length:
        Window length (``None`` = ``n_fft``).
    hop_length:
        Frame shift in samples (``<= n_fft``).
    window:
        ``"hann"`` or ``"hamming"`` (periodic).
    n_mels:
        Number of mel bands.
    fmin, fmax:
        Mel filterbank edges in Hz (``fmax=None`` = ``sample_rate / 2``).
    normalization:
        ``None``, ``"utterance"`` or ``"global"``; see :mod:`speechconv.frontends.normalization`.
    global_mean, global_std:
        Per-feature statistics for ``normalization="global"``.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        n_features: int,
        sample_rate: int = 16000,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int = 160,
        window: str = "hann",
        n_mels: int = 40,
        fmin: float = 20.0,
        fmax: float | None = None,
        normalization: str | None = None,
        global_mean: Sequence[float] | None = None,
        global_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        prefix = f"{self.name or type(self).__name__} front-end"
        for ok, message in positive_int_checks(
            sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, n_features=n_features
        ):
            if not ok:
                raise ConfigError(f"{prefix}: {message}")
        win_length = n_fft if win_length is None else win_length
        nyquist = sample_rate / 2
        fmax_hz = nyquist if fmax is None else fmax
        checks = [
            (
                isinstance(win_length, int) and 0 < win_length <= n_fft,
                f"win_length must be in [1, n_fft={n_fft}], got {win_length!r}",
            ),
            (
                isinstance(hop_length, int) and 0 < hop_length <= n_fft,
                f"hop_length must be in [1, n_fft={n_fft}], got {hop_length!r}",
            ),
            (window in WINDOWS, f"window must be one of {sorted(WINDOWS)}, got {window!r}"),
            (
                isinstance(fmin, (int, float))
                and isinstance(fmax_hz, (int, float))
                and 0.0 <= fmin < fmax_hz <= nyquist,
                f"need 0 <= fmin < fmax <= sample_rate/2 = {nyquist}, got fmin={fmin}, fmax={fmax}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{prefix}: {message}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.window = window
        self.n_mels = n_mels
        self.fmin = float(fmin)
        self.fmax = fmax
        self.n_features = n_features
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            window_fn=WINDOWS[window],
            power=None,  # complex; the power is re^2 + im^2 (much faster than abs().pow(2) on CPU)
            center=False,
        )
        self.mel_scale = torchaudio.transforms.MelScale(
            n_mels=n_mels,
            sample_rate=sample_rate,
            f_min=self.fmin,
            f_max=float(fmax_hz),
            n_stft=n_fft // 2 + 1,
            norm="slaney",
            mel_scale="slaney",
        )
        self.mel_groups = band_groups(self.mel_scale.fb.T)
        self.exact = True  # float64 sums; see fast_numerics
        self.normalizer = FeatureNormalizer(n_features, normalization, global_mean, global_std)

    # ------------------------------------------------------------------ description
    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def normalization(self) -> str | None:
        return self.normalizer.mode

    def num_frames(self, num_samples: int) -> int:
        """Number of frames produced for ``num_samples`` samples."""
        return num_frames(num_samples, self.n_fft, self.hop_length)

    def extra_config(self) -> dict[str, Any]:
        """Subclass-specific constructor arguments for :attr:`config`."""
        return {}

    @property
    def config(self) -> dict[str, Any]:
        """A dict that rebuilds this front-end with ``build_frontend`` (fitted global stats included)."""
        config: dict[str, Any] = {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "window": self.window,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            **self.extra_config(),
            "normalization": self.normalization,
        }
        if self.normalization == "global":
            config["global_mean"] = self.normalizer.mean.tolist()
            config["global_std"] = self.normalizer.std.tolist()
        return config

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, frame_rate={self.frame_rate:g}, "
            f"normalization={self.normalization!r}"
        )

    # ------------------------------------------------------------------ computation
    def use_matmul_stft(self) -> None:
        """Compute the STFT as framing plus float32 matmuls from now on
        (:class:`~speechconv.frontends.matmul_stft.MatmulMelPower`): the path that exports to ONNX. The
        features equal the default path's to float32 rounding. Export calls this on its own copy."""
        from speechconv.frontends.matmul_stft import MatmulMelPower

        self.matmul_stft = MatmulMelPower(self)

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram ``(B, n_mels, frames)`` of a ``(T,)`` / ``(B, T)`` waveform."""
        wave = as_batch(wave)
        if getattr(self, "matmul_stft", None) is not None:
            return self.matmul_stft(wave)[0]
        frames = self.num_frames(wave.shape[-1])
        if frames == 0:
            return wave.new_zeros(wave.shape[0], self.n_mels, 0)
        used = (frames - 1) * self.hop_length + self.n_fft
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = self.spectrogram(wave[:, :used])
            if not self.exact:
                return fast_matmul(self.mel_scale.fb.T, spectral_power(spec))
            return banded_matmul(self.mel_scale.fb.T, spectral_power(spec), self.mel_groups)

    @contextlib.contextmanager
    def fast_numerics(self, enabled: bool = True):
        """Within this block, products are one float32 matmul per batch instead of the exact float64
        sums: for training, where a frame's bits need not match between streaming and offline."""
        before, self.exact = self.exact, not enabled
        try:
            yield self
        finally:
            self.exact = before

    def matmul(self, matrix: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """``matrix @ frames`` for features: exact, or one float32 product within :meth:`fast_numerics`."""
        return frame_matmul(matrix, frames) if self.exact else fast_matmul(matrix, frames)

    def features_from_mel(self, mel: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Map mel power ``(B, n_mels, t)`` to features ``(B, n_features, t)``.

        ``state`` holds the subclass's streaming state (empty at the start of a stream); return
        the updated state. Stateless front-ends return it unchanged.
        """
        raise NotImplementedError

    def raw_features(self, wave: torch.Tensor) -> torch.Tensor:
        """Features before normalization, ``(B, n_features, frames)``."""
        features, _ = self.features_from_mel(self.mel_power(wave), {})
        return features

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Offline features ``(B, n_features, frames)`` float32 of a ``(T,)`` / ``(B, T)`` waveform."""
        return self.normalizer(self.raw_features(wave))

    def stream(
        self, chunk: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Features of the frames completed by ``chunk``; see the module docstring.

        Parameters
        ----------
        chunk:
            ``(T,)`` or ``(B, T)`` next samples of the stream (any ``T >= 0``).
        state:
            The state returned by the previous step; ``None`` or ``{}`` starts a stream.

        Returns
        -------
        frames:
            ``(B, n_features, t_new)`` float32.
        state:
            The new state (the input state is not modified).
        """
        if not self.normalizer.streamable:
            raise ConfigError(
                f"{self.name} front-end: normalization='utterance' needs the whole utterance and cannot "
                "stream; use normalization='global' or None"
            )
        chunk = as_batch(chunk, "chunk")
        state = dict(state or {})
        tail = state.pop("samples", None)
        if tail is not None:
            if tail.ndim != 2 or tail.shape[0] != chunk.shape[0]:
                raise ValueError(
                    f"state['samples'] has shape {tuple(tail.shape)}, which does not match a chunk "
                    f"batch of {chunk.shape[0]}"
                )
            chunk = torch.cat([tail.to(chunk), chunk], dim=-1)
        if getattr(self, "matmul_stft", None) is not None:
            mel, rest = self.matmul_stft(chunk)
        else:
            mel, rest = self.mel_power(chunk), chunk[:, self.num_frames(chunk.shape[-1]) * self.hop_length:]
        features, state = self.features_from_mel(mel, state)
        state["samples"] = rest
        return self.normalizer(features), state

    # ------------------------------------------------------------------ global statistics
    def fit_global_stats(self, features_iterable: Iterable[torch.Tensor]) -> None:
        """Fit the ``"global"`` normalization from un-normalized features (see :meth:`raw_features`)."""
        self.normalizer.fit(features_iterable)

    @torch.no_grad()
    def fit_global_stats_from_waves(self, waves: Iterable[torch.Tensor]) -> None:
        """Fit the ``"global"`` normalization from an iterable of ``(T,)`` / ``(B, T)`` waveforms."""
        self.fit_global_stats(self.raw_features(wave) for wave in waves)
