"""Keyword-spotting losses on per-frame logits ``(batch, classes, frames)``.

* :func:`clip_logits` pools frame logits to one score vector per clip (max, mean or last frame).
* :func:`max_pool_loss` is the max-pooling loss of wekws (Hou et al. 2019, "Region proposal
  network based small-footprint keyword spotting"; Wang et al., "Wekws"), written for softmax
  outputs: a keyword clip is trained on its frame with the highest keyword posterior, a background
  clip on its frame with the lowest background posterior (the hardest frame). Since
  ``-log p`` is decreasing, that is the minimum (keyword) or maximum (background) frame
  cross-entropy.
* :func:`frame_cross_entropy` is plain per-frame cross-entropy against frame targets.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def clip_logits(logits: torch.Tensor, pool: str = "max") -> torch.Tensor:
    """Pool ``(B, C, T)`` frame logits over time to ``(B, C)``: ``max``, ``mean`` or ``last`` frame."""
    if pool == "max":
        return logits.amax(dim=-1)
    if pool == "mean":
        return logits.mean(dim=-1)
    if pool == "last":
        return logits[..., -1]
    raise ValueError(f"unknown clip pooling {pool!r}; choose max, mean or last")


def frame_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every frame against the clip label: ``(B, C, T)``, ``(B,)`` -> ``(B, T)``."""
    frames = logits.shape[-1]
    return F.cross_entropy(logits, targets[:, None].expand(-1, frames), reduction="none")


def max_pool_loss(logits: torch.Tensor, targets: torch.Tensor,
                  background: Sequence[int] | torch.Tensor = (0,)) -> torch.Tensor:
    """wekws max-pooling loss with a softmax over classes, averaged over the batch.

    Parameters
    ----------
    logits : (B, C, T) frame logits.
    targets : (B,) clip labels.
    background : class indices that are "not a keyword" (trained on their hardest frame).
    """
    losses = frame_losses(logits, targets)  # (B, T) = -log p[target, t]
    background = torch.as_tensor(background, device=targets.device).reshape(-1)
    is_background = (targets[:, None] == background[None, :]).any(dim=1)
    per_clip = torch.where(is_background, losses.amax(dim=-1), losses.amin(dim=-1))
    return per_clip.mean()


def frame_cross_entropy(logits: torch.Tensor, frame_targets: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of every frame against its target (``frame_targets`` (B, T))."""
    return F.cross_entropy(logits, frame_targets, label_smoothing=label_smoothing)


def frame_targets(labels: torch.Tensor, start: torch.Tensor, end: torch.Tensor, frame_times: torch.Tensor,
                  background: int, tolerance: float = 0.0) -> torch.Tensor:
    """Frame targets from event spans: ``labels[b]`` where ``start - tolerance <= time <= end + tolerance``,
    ``background`` elsewhere (and everywhere for background clips). Times share one unit (samples)."""
    inside = (frame_times[None, :] >= start[:, None] - tolerance) & (frame_times[None, :] <= end[:, None] + tolerance)
    targets = torch.where(inside, labels[:, None], torch.full_like(inside, background, dtype=labels.dtype))
    return targets
