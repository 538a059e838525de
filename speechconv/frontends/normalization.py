"""Per-channel feature normalization for front-end outputs.

Modes
-----
``None``
    Identity.
``"utterance"``
    Each utterance and channel is shifted to mean 0 and scaled to std 1 over time
    (population variance). Needs the whole utterance, so it cannot stream.
``"global"``
    Fixed per-channel ``mean`` / ``std`` buffers, estimated once over a corpus with
    :meth:`FeatureNormalizer.fit` (or given in the config). Frame-local, so it streams.
    Until fitted the buffers are mean 0 / std 1, i.e. the identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from speechconv.errors import ConfigError

NORMALIZATIONS = (None, "utterance", "global")


def check_normalization(mode: str | None) -> str | None:
    """Return the canonical mode (``"none"`` means ``None``) or raise ConfigError."""
    if isinstance(mode, str) and mode.lower() == "none":
        return None
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {list(NORMALIZATIONS)}, got {mode!r}")
    return mode


def utterance_normalize(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalize ``(B, F, T)`` features to zero mean, unit std per utterance and channel over time."""
    if features.shape[-1] == 0:
        return features
    mean = features.mean(dim=-1, keepdim=True)
    var = features.var(dim=-1, keepdim=True, unbiased=False)
    return (features - mean) / torch.sqrt(var + eps)


def channel_stats(
    features_iterable: Iterable[torch.Tensor], n_features: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std over all frames of ``(F, T)`` or ``(B, F, T)`` tensors.

    Sums are accumulated in float64, so long corpora do not lose precision.
    """
    count = 0
    total = torch.zeros(n_features, dtype=torch.float64)
    total_sq = torch.zeros(n_features, dtype=torch.float64)
    for index, features in enumerate(features_iterable):
        if features.ndim == 2:
            features = features.unsqueeze(0)
        if features.ndim != 3 or features.shape[1] != n_features:
            raise ValueError(
                f"features item {index}: expected shape (F, T) or (B, F, T) with F={n_features}, "
                f"got {tuple(features.shape)}"
            )
        frames = features.detach().to(device="cpu", dtype=torch.float64)
        frames = frames.transpose(0, 1).reshape(n_features, -1)
        count += frames.shape[1]
        total += frames.sum(dim=1)
        total_sq += (frames * frames).sum(dim=1)
    if count == 0:
        raise ValueError("cannot fit global feature statistics: no frames were given")
    mean = total / count
    var = (total_sq / count - mean * mean).clamp(min=0.0)
    return mean, var.sqrt()


class FeatureNormalizer(nn.Module):
    """Normalizes ``(B, F, T)`` features per channel; see the module docstring for the modes.

    Parameters
    ----------
    n_features:
        Number of channels F.
    mode:
        ``None``, ``"utterance"`` or ``"global"``.
    mean, std:
        Optional global statistics (length F) for ``mode="global"``.
    eps:
        Added to the variance (utterance) or floor of the std (global).
    """

    def __init__(
        self,
        n_features: int,
        mode: str | None = None,
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.mode = check_normalization(mode)
        self.eps = eps
        if (mean is not None or std is not None) and self.mode != "global":
            raise ConfigError(
                f"global_mean/global_std are only used with normalization='global', got {mode!r}"
            )
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        if mean is not None or std is not None:
            if mean is None or std is None:
                raise ConfigError("global_mean and global_std must be given together")
            self.set_stats(mean, std)

    @property
    def streamable(self) -> bool:
        return self.mode != "utterance"

    def set_stats(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor) -> None:
        """Set the global per-channel statistics."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        for label, value in (("global_mean", mean_t), ("global_std", std_t)):
            if value.numel() != self.n_features:
                raise ConfigError(
                    f"{label} needs {self.n_features} values (one per channel), got {value.numel()}"
                )
            if not torch.isfinite(value).all():
                raise ConfigError(f"{label} contains non-finite values")
        if (std_t <= 0).any():
            raise ConfigError("global_std must be positive in every channel")
        self.mean.copy_(mean_t)
        self.std.copy_(std_t)

    def fit(self, features_iterable: Iterable[torch.Tensor]) -> None:
        """Estimate the global statistics from un-normalized ``(F, T)`` / ``(B, F, T)`` features."""
        if self.mode != "global":
            raise ConfigError(f"fit_global_stats needs normalization='global', got {self.mode!r}")
        mean, std = channel_stats(features_iterable, self.n_features)
        self.set_stats(mean, std.clamp(min=self.eps))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.mode is None:
            return features
        if self.mode == "utterance":
            return utterance_normalize(features, self.eps)
        return (features - self.mean[:, None]) / self.std[:, None]
