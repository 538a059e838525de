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

IGNORE_INDEX = -100


def frame_mask(lengths: torch.Tensor | None, frames: int) -> torch.Tensor | None:
    """``(batch, frames)`` True where a frame is real (``t < length``); None without lengths."""
    if lengths is None:
        return None
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def clip_logits(logits: torch.Tensor, pool: str = "max", lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Pool ``(B, C, T)`` frame logits over time to ``(B, C)``: ``max``, ``mean`` or ``last`` (valid) frame."""
    mask = frame_mask(lengths, logits.shape[-1])
    if pool == "max":
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        return logits.amax(dim=-1)
    if pool == "mean":
        if mask is None:
            return logits.mean(dim=-1)
        weights = mask[:, None, :].to(logits.dtype)
        return (logits * weights).sum(-1) / weights.sum(-1).clamp_min(1)
    if pool == "last":
        if lengths is None:
            return logits[..., -1]
        index = (lengths - 1).clamp_min(0).view(-1, 1, 1).expand(-1, logits.shape[1], 1)
        return logits.gather(-1, index).squeeze(-1)
    raise ValueError(f"unknown clip pooling {pool!r}; choose max, mean or last")


def frame_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every frame against the clip label: ``(B, C, T)``, ``(B,)`` -> ``(B, T)``."""
    frames = logits.shape[-1]
    return F.cross_entropy(logits, targets[:, None].expand(-1, frames), reduction="none")


def max_pool_loss(logits: torch.Tensor, targets: torch.Tensor, background: Sequence[int] | torch.Tensor = (0,),
                  lengths: torch.Tensor | None = None) -> torch.Tensor:
    """wekws max-pooling loss with a softmax over classes, averaged over the batch.

    Parameters
    ----------
    logits : (B, C, T) frame logits.
    targets : (B,) clip labels.
    background : class indices that are "not a keyword" (trained on their hardest frame).
    lengths : optional (B,) valid frames per clip; padded frames never get picked.
    """
    losses = frame_losses(logits, targets)  # (B, T) = -log p[target, t]
    mask = frame_mask(lengths, logits.shape[-1])
    background = torch.as_tensor(background, device=targets.device).reshape(-1)
    is_background = (targets[:, None] == background[None, :]).any(dim=1)
    if mask is not None:
        keyword_losses = losses.masked_fill(~mask, float("inf"))
        background_losses = losses.masked_fill(~mask, float("-inf"))
    else:
        keyword_losses = background_losses = losses
    per_clip = torch.where(is_background, background_losses.amax(dim=-1), keyword_losses.amin(dim=-1))
    return per_clip.mean()


def frame_cross_entropy(logits: torch.Tensor, frame_targets: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over frames with a target (``frame_targets`` (B, T), ``-100`` = ignore)."""
    return F.cross_entropy(logits, frame_targets, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)


def frame_targets(labels: torch.Tensor, start: torch.Tensor, end: torch.Tensor, frame_times: torch.Tensor,
                  background: int, tolerance: float = 0.0) -> torch.Tensor:
    """Frame targets from event spans: ``labels[b]`` where ``start - tolerance <= time <= end + tolerance``,
    ``background`` elsewhere (and everywhere for background clips). Times share one unit (samples)."""
    inside = (frame_times[None, :] >= start[:, None] - tolerance) & (frame_times[None, :] <= end[:, None] + tolerance)
    targets = torch.where(inside, labels[:, None], torch.full_like(inside, background, dtype=labels.dtype))
    return targets
