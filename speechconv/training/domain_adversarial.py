"""Domain-adversarial training (DANN, Ganin & Lempitsky 2015) against the synthetic-voice shortcut.

A keyword detector trained from TTS sees every keyword in a synthetic voice, while many negatives are
real recordings, so "sounds like a real person" is a free cue for "not the keyword". Here a small
discriminator reads the encoder features of negative clips and guesses real vs synthetic; its gradient
reaches the encoder reversed (scaled by ``weight``, ramped up over training), so the encoder learns
features that do not tell a real voice from a TTS engine. Training only: the discriminator is not part
of the spotter and is neither saved with a packaged model nor exported.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechconv.data.tts import ENGINES
from speechconv.errors import ConfigError

SYNTHETIC, REAL, UNKNOWN = 0, 1, -1
#: Engines of clips without a voice, which belong to neither domain.
VOICELESS_ENGINES = ("noise", "")


def domain_of(engine: str) -> int:
    """``SYNTHETIC`` for a TTS engine's clip (also converted, e.g. ``espeak+praat``), ``UNKNOWN`` for noise
    and unlabelled clips, else ``REAL``."""
    base = re.split(r"[^a-z0-9]", engine.lower())[0]
    if base in ENGINES:
        return SYNTHETIC
    return UNKNOWN if engine in VOICELESS_ENGINES else REAL


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-scale`` on the way back."""
    return _ReverseGradient.apply(x, scale)


def ramp(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule for the reversal strength: 0 at the start of training, near 1 from about a third on."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(progress, 0.0), 1.0))) - 1.0


class DomainHead(nn.Module):
    """Encoder features ``(B, C, T)`` -> one real-vs-synthetic logit per clip (mean and max over time)."""

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        if hidden < 1:
            raise ConfigError(f"domain_adversarial: hidden must be >= 1, got {hidden}")
        self.net = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([features.mean(dim=-1), features.amax(dim=-1)], dim=1)
        return self.net(pooled).squeeze(1)


def domain_loss(head: DomainHead, features: torch.Tensor, domains: torch.Tensor, use: torch.Tensor,
                scale: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(loss, accuracy, clips)`` of the discriminator on the clips where ``use`` holds and the domain is
    known; the features' gradient is reversed and scaled by ``scale``. No such clips: a zero loss."""
    keep = use & (domains != UNKNOWN)
    if not bool(keep.any()):
        zero = features.sum() * 0.0
        return zero, zero.detach(), 0
    logits = head(reverse_gradient(features[keep], scale))
    target = domains[keep].float()
    loss = F.binary_cross_entropy_with_logits(logits, target)
    accuracy = ((logits > 0).float() == target).float().mean()
    return loss, accuracy.detach(), int(keep.sum())
