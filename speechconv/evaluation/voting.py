"""Test-time voting: classify several shifted copies of a clip (or crops/flips of an image) and vote.

As in AlexNet's multi-crop testing (Krizhevsky et al. 2012: the four corner and the centre crops and
their mirror images, predictions averaged), each view is classified and the views vote:

- ``"mean"``: the class of the mean of the views' probabilities;
- ``"majority"``: the class most views pick (ties go to the tied class with the higher mean
  probability).

Audio views are time shifts: shifting by ``s > 0`` seconds delays the clip (``s`` seconds of zeros in
front, the end cut off), ``s < 0`` advances it (start cut off, zeros at the end); the length is kept.
A clip's probabilities are its frame posteriors pooled over time (``"mean"`` or ``"max"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from speechconv.errors import ConfigError

METHODS = ("mean", "majority")
POOLS = ("mean", "max")
CROPS = ("center", "five", "ten")


@dataclass
class Vote:
    """Outcome of a vote: the winning class, the mean probabilities and each view's class."""

    label: int
    probabilities: torch.Tensor  # (C,) mean over the views
    view_labels: torch.Tensor  # (views,)

    @property
    def votes(self) -> torch.Tensor:
        """Views that chose each class, ``(C,)``."""
        return torch.bincount(self.view_labels, minlength=self.probabilities.shape[0])


def vote(view_probabilities: torch.Tensor, method: str = "mean") -> Vote:
    """Vote over ``(views, C)`` class probabilities."""
    if method not in METHODS:
        raise ConfigError(f"voting method must be one of {METHODS}, got {method!r}")
    if view_probabilities.ndim != 2 or view_probabilities.shape[0] == 0:
        raise ValueError(f"expected (views, classes) probabilities, got shape {tuple(view_probabilities.shape)}")
    mean = view_probabilities.mean(dim=0)
    view_labels = view_probabilities.argmax(dim=1)
    if method == "mean":
        label = int(mean.argmax())
    else:
        counts = torch.bincount(view_labels, minlength=mean.shape[0])
        tied = counts == counts.max()
        label = int(torch.where(tied, mean, torch.full_like(mean, -1.0)).argmax())
    return Vote(label, mean, view_labels)


# --------------------------------------------------------------------------------------------- audio
def shift_wave(wave: torch.Tensor, shift: int) -> torch.Tensor:
    """``wave`` (..., T) delayed by ``shift`` samples (advanced when negative), zero-filled, same length."""
    length = wave.shape[-1]
    out = torch.zeros_like(wave)
    if abs(shift) >= length:
        return out
    if shift >= 0:
        out[..., shift:] = wave[..., : length - shift]
    else:
        out[..., : length + shift] = wave[..., -shift:]
    return out


def clip_probabilities(model: nn.Module, waves: torch.Tensor, pool: str = "mean") -> torch.Tensor:
    """``(B, C)`` class probabilities of ``(B, T)`` clips.

    A :class:`~speechconv.streaming.KeywordSpotter` gives frame posteriors; any other module's output
    is taken as logits and soft-maxed. ``(B, C, frames)`` outputs are pooled over frames (``"max"``:
    each class's highest frame, renormalised to sum to 1).
    """
    if pool not in POOLS:
        raise ConfigError(f"pool must be one of {POOLS}, got {pool!r}")
    from speechconv.streaming import KeywordSpotter

    out = model(waves)
    probabilities = out if isinstance(model, KeywordSpotter) else torch.softmax(out, dim=1)
    if probabilities.ndim == 3:
        if probabilities.shape[-1] == 0:
            raise ValueError(f"the clips ({waves.shape[-1]} samples) are too short for one output frame")
        if pool == "mean":
            probabilities = probabilities.mean(dim=-1)
        else:
            probabilities = probabilities.amax(dim=-1)
            probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
    return probabilities


@torch.no_grad()
def vote_audio(
    spotter_or_model: nn.Module,
    wave: torch.Tensor,
    shifts_s: Sequence[float] = (-0.1, -0.05, 0.0, 0.05, 0.1),
    method: str = "mean",
    sample_rate: int | None = None,
    pool: str = "mean",
) -> Vote:
    """Classify ``wave`` ``(T,)`` shifted by each of ``shifts_s`` seconds, and vote.

    ``sample_rate`` defaults to the spotter's.
    """
    if wave.ndim != 1:
        raise ValueError(f"vote_audio takes one 1-D clip, got shape {tuple(wave.shape)}")
    if not shifts_s:
        raise ConfigError("shifts_s must hold at least one shift")
    rate = sample_rate if sample_rate is not None else getattr(spotter_or_model, "sample_rate", None)
    if rate is None:
        raise ConfigError("give sample_rate: the model does not state one")
    views = torch.stack([shift_wave(wave, int(round(s * rate))) for s in shifts_s])
    return vote(clip_probabilities(spotter_or_model, views, pool), method)


# --------------------------------------------------------------------------------------------- images
def image_views(
    image: torch.Tensor, crop_size: int | tuple[int, int] | None = None, crops: str = "ten"
) -> torch.Tensor:
    """``(views, C, h, w)`` crops of a ``(C, H, W)`` image.

    ``"center"``: the centre crop; ``"five"``: the four corners and the centre; ``"ten"``: those five
    and their horizontal mirror images (AlexNet). ``crop_size`` defaults to the whole image.
    """
    if crops not in CROPS:
        raise ConfigError(f"crops must be one of {CROPS}, got {crops!r}")
    if image.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    h, w = (height, width) if crop_size is None else (
        (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    )
    if not (0 < h <= height and 0 < w <= width):
        raise ValueError(f"crop size {(h, w)} does not fit the image {(height, width)}")
    top, left = (height - h) // 2, (width - w) // 2
    center = image[:, top:top + h, left:left + w]
    if crops == "center":
        return center[None]
    corners = [
        image[:, :h, :w], image[:, :h, width - w:], image[:, height - h:, :w], image[:, height - h:, width - w:],
    ]
    views = torch.stack(corners + [center])
    if crops == "ten":
        views = torch.cat([views, views.flip(-1)])
    return views


@torch.no_grad()
def vote_image(
    model: nn.Module, image: torch.Tensor, crops: str = "ten", crop_size: int | tuple[int, int] | None = None,
    method: str = "mean",
) -> Vote:
    """Classify crops (and mirror images) of ``image`` ``(C, H, W)`` with ``model`` (logits) and vote."""
    views = image_views(image, crop_size, crops)
    return vote(torch.softmax(model(views), dim=1), method)
