"""Auxiliary phone recognition (CTC) on the detector's own encoder, for training only.

The phone head reads what the model's output layer reads (the last encoder features), so the
encoder has to carry phone identity on real voices as well as the keyword decision. At the model's
output rate (e.g. 80 ms for TC-ResNet8) read speech has more phones than frames, so each frame emits
``subframes`` phone distributions (a 1x1 convolution, reshaped like a pixel shuffle). The head is not
part of the spotter: it is neither saved with a packaged model nor exported.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechconv.data.phones import BLANK, PHONES
from speechconv.errors import ConfigError


def encoder_of(model: nn.Module) -> tuple[nn.Module, int]:
    """``(encoder, channels)``: everything of ``model.body`` but its per-frame output layer, as a
    :class:`StreamingSequential` sharing the layers (state keys those of the body, ``"i."``), and the
    number of channels it outputs."""
    from speechconv.blocks import StreamingSequential

    body = getattr(model, "body", None)
    if body is None or len(body) < 2 or not hasattr(body[-1], "in_channels"):
        raise ConfigError(f"{type(model).__name__}: the phone task needs a model whose body ends in an "
                          "output convolution (e.g. tc_resnet, tdnn)")
    return StreamingSequential(*list(body)[:-1]), int(body[-1].in_channels)


def encode(spotter, encoder, wave: torch.Tensor, feature_augment=None) -> torch.Tensor:
    """Encoder features ``(B, C, frames)`` of whole waveforms from the spotter's initial state, the way
    :meth:`KeywordSpotter.logits` computes the logits."""
    from speechconv.blocks.streaming import sub_state

    state = spotter.initial_state(wave.shape[0]) if spotter.streamable else {}
    if state:
        features, _ = spotter.frontend.stream(wave, sub_state(state, "frontend."))
    else:
        features = spotter.frontend(wave)
    if feature_augment is not None:
        features = feature_augment(features)
    if not state:
        return encoder(features)
    return encoder.stream(features, sub_state(state, "model.body."))[0]


class PhoneHead(nn.Module):
    """Encoder features ``(B, C, T)`` -> phone log-probabilities ``(B, len(PHONES) + 1, T * subframes)``."""

    def __init__(self, channels: int, subframes: int = 3):
        super().__init__()
        if subframes < 1:
            raise ConfigError(f"phone task: subframes must be >= 1, got {subframes}")
        self.subframes, self.classes = subframes, len(PHONES) + 1
        self.proj = nn.Conv1d(channels, self.classes * subframes, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, _, frames = features.shape
        y = self.proj(features).reshape(batch, self.subframes, self.classes, frames)
        y = y.permute(0, 2, 3, 1).reshape(batch, self.classes, frames * self.subframes)
        return F.log_softmax(y, dim=1)


def ctc_phone_loss(log_probs: torch.Tensor, frame_lengths: torch.Tensor, targets: torch.Tensor,
                   target_lengths: torch.Tensor, subframes: int) -> torch.Tensor:
    """Mean CTC loss per target phone; ``frame_lengths`` are valid encoder frames per utterance.
    Utterances too short for their transcript contribute zero (``zero_infinity``)."""
    lengths = (frame_lengths * subframes).clamp(max=log_probs.shape[-1])
    return F.ctc_loss(log_probs.permute(2, 0, 1), targets, lengths, target_lengths, blank=BLANK,
                      reduction="mean", zero_infinity=True)
