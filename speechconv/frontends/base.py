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
The filterbank product (and MFCC's DCT) is accumulated in float64 and rounded to float32, so a frame's
features do not depend on how many frames are computed together (see :func:`frame_matmul`). The mel
filterbank is banded (each band covers a few FFT bins), so it is applied as a few dense products over
consecutive bands and only the bins they cover (:func:`band_groups`, :func:`banded_matmul`): about a
fifth of the dense product's work, with the same float64 sums of the same nonzero terms.

Streaming
---------
``forward_streaming(chunk, cache)`` keeps the samples that do not yet complete a frame in
``cache["samples"]`` (``(B, L)``, ``0 <= L < n_fft``), plus any state of the subclass (PCEN's smoother).
Concatenating the frames of all steps gives exactly the offline frames. With chunks of ``k * hop``
samples the tail settles at ``L = hop * ceil((n_fft - hop) / hop)`` samples as soon as the first frame
is out (from the first step when ``k * hop >= n_fft``), so every cache tensor keeps its shape from step
to step, as a fixed-shape (e.g. ONNX) streaming step needs. No zeros are ever fed in.
Run streams under ``torch.no_grad()``: otherwise PCEN's smoother state keeps the autograd graph of
every earlier step. The STFT is complex, so ONNX export of a step needs the dynamo exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``); the legacy TorchScript exporter
rejects complex STFTs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
import torchaudio
from torch import nn

from speechconv.errors import ConfigError
from speechconv.frontends.normalization import FeatureNormalizer

WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window}

Cache = dict[str, torch.Tensor]


def num_frames(num_samples: int, n_fft: int, hop_length: int) -> int:
    """Number of complete causal frames in ``num_samples`` samples."""
    if num_samples < n_fft:
        return 0
    return (num_samples - n_fft) // hop_length + 1


def frame_matmul(matrix: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``matrix @ frames`` for ``(out, in)`` and ``(B, in, T)``, the same bits whatever T is.

    A float32 GEMM's blocking, hence its rounding, depends on the matrix sizes, so a frame's result
    would depend on how many frames are computed together and streaming would drift from offline by
    a few ulps. Accumulating in float64 and rounding once to float32 makes each frame's result
    independent of T (except for astronomically rare ties). MPS has no float64 and stays in float32.
    """
    if frames.device.type == "mps":
        return torch.matmul(matrix, frames)
    return torch.matmul(matrix.double(), frames.double()).to(frames.dtype)


def band_groups(matrix: torch.Tensor, overhead: int = 256) -> list[tuple[int, int, int, int]]:
    """Split the rows of a banded ``(out, in)`` matrix into groups of consecutive rows for :func:`banded_matmul`.

    Returns ``(first_row, end_row, first_col, end_col)`` per group: the group's rows are zero outside
    columns ``[first_col, end_col)``. Groups minimise the multiply-adds per frame plus ``overhead`` per
    group (a product's fixed cost), by dynamic programming over the row boundaries.
    """
    nonzero = matrix != 0
    rows = matrix.shape[0]
    starts, ends = [], []
    for row in nonzero:
        cols = torch.nonzero(row).flatten()
        starts.append(int(cols[0]) if len(cols) else 0)
        ends.append(int(cols[-1]) + 1 if len(cols) else 0)
    best = [0] + [math.inf] * rows
    cut = [0] * (rows + 1)
    for end in range(1, rows + 1):
        for first in range(end):
            lo, hi = min(starts[first:end]), max(ends[first:end])
            cost = best[first] + max(hi - lo, 0) * (end - first) + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, first
    groups, end = [], rows
    while end > 0:
        first = cut[end]
        lo, hi = min(starts[first:end]), max(ends[first:end])
        groups.append((first, end, lo, max(hi, lo)))
        end = first
    return groups[::-1]


def banded_matmul(
    matrix: torch.Tensor, frames: torch.Tensor, groups: Sequence[tuple[int, int, int, int]]
) -> torch.Tensor:
    """:func:`frame_matmul` for a banded ``matrix`` split by :func:`band_groups`: same float64 sums, less work.

    Each group's rows are a float64 product over the group's columns only (the skipped terms are
    exact zeros), so a frame's result is independent of T as with :func:`frame_matmul`.
    """
    if frames.device.type == "mps":
        return torch.matmul(matrix, frames)
    matrix64, frames64 = matrix.double(), frames.double()
    out = frames64.new_empty(frames.shape[:-2] + (matrix.shape[0], frames.shape[-1]))
    flat_frames = frames64.reshape(-1, *frames.shape[-2:])
    flat_out = out.view(-1, *out.shape[-2:])
    for b in range(flat_frames.shape[0]):
        for first, end, lo, hi in groups:
            torch.mm(matrix64[first:end, lo:hi], flat_frames[b, lo:hi], out=flat_out[b, first:end])
    return out.to(frames.dtype)


def spectral_power(spec: torch.Tensor) -> torch.Tensor:
    """``re^2 + im^2`` of a complex spectrogram (the same float32 operations, one pass over the pairs)."""
    squares = torch.view_as_real(spec).square()
    return squares[..., 0] + squares[..., 1]


def steady_tail_length(n_fft: int, hop_length: int) -> int:
    """Length of the streaming sample tail once chunks are whole multiples of the hop."""
    return hop_length * math.ceil((n_fft - hop_length) / hop_length)


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
    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram ``(B, n_mels, frames)`` of a ``(T,)`` / ``(B, T)`` waveform."""
        wave = as_batch(wave)
        frames = self.num_frames(wave.shape[-1])
        if frames == 0:
            return wave.new_zeros(wave.shape[0], self.n_mels, 0)
        used = (frames - 1) * self.hop_length + self.n_fft
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = self.spectrogram(wave[:, :used])
            return banded_matmul(self.mel_scale.fb.T, spectral_power(spec), self.mel_groups)

    def features_from_mel(self, mel: torch.Tensor, state: Cache) -> tuple[torch.Tensor, Cache]:
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

    def forward_streaming(
        self, chunk: torch.Tensor, cache: Cache | None = None
    ) -> tuple[torch.Tensor, Cache]:
        """Features of the frames completed by ``chunk``; see the module docstring.

        Parameters
        ----------
        chunk:
            ``(T,)`` or ``(B, T)`` next samples of the stream (any ``T >= 0``).
        cache:
            The cache returned by the previous step; ``None`` or ``{}`` starts a stream.

        Returns
        -------
        frames:
            ``(B, n_features, t_new)`` float32.
        cache:
            The new cache (the input cache is not modified).
        """
        if not self.normalizer.streamable:
            raise ConfigError(
                f"{self.name} front-end: normalization='utterance' needs the whole utterance and cannot "
                "stream; use normalization='global' or None"
            )
        chunk = as_batch(chunk, "chunk")
        cache = dict(cache or {})
        tail = cache.pop("samples", None)
        if tail is not None:
            if tail.ndim != 2 or tail.shape[0] != chunk.shape[0]:
                raise ValueError(
                    f"cache['samples'] has shape {tuple(tail.shape)}, which does not match a chunk "
                    f"batch of {chunk.shape[0]}"
                )
            chunk = torch.cat([tail.to(chunk), chunk], dim=-1)
        frames = self.num_frames(chunk.shape[-1])
        features, state = self.features_from_mel(self.mel_power(chunk), cache)
        state["samples"] = chunk[:, frames * self.hop_length :]
        return self.normalizer(features), state

    # ------------------------------------------------------------------ global statistics
    def fit_global_stats(self, features_iterable: Iterable[torch.Tensor]) -> None:
        """Fit the ``"global"`` normalization from un-normalized features (see :meth:`raw_features`)."""
        self.normalizer.fit(features_iterable)

    @torch.no_grad()
    def fit_global_stats_from_waves(self, waves: Iterable[torch.Tensor]) -> None:
        """Fit the ``"global"`` normalization from an iterable of ``(T,)`` / ``(B, T)`` waveforms."""
        self.fit_global_stats(self.raw_features(wave) for wave in waves)
