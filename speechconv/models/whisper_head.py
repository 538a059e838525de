"""A keyword head over Whisper encoder frames (:mod:`speechconv.frontends.whisper`).

Per frame: layer norm, a 1x1 convolution to ``width`` channels, one residual convolution over ``kernel``
frames (9 frames = 180 ms), and a 1x1 convolution to one logit. Trained with the max-pooling loss (the
clip's label against its highest frame), so the frames around the keyword learn to fire, and run over a
whole recording's frames as they are: its score curve has one value per 20 ms. Scores are
``sigmoid(logit / temperature)``: a trained head's logits on real speech reach 12 and more, where sigmoid
saturates in float32, so a temperature above 1 keeps thresholds near the top apart (it does not change
the order of the scores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechconv.blocks.functional import AxisGeometry, receptive_field


class WhisperKeywordHead(nn.Module):
    def __init__(self, dim: int = 384, width: int = 128, kernel: int = 9, dropout: float = 0.2,
                 temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (centred frames), got {kernel}")
        self.dim, self.width, self.kernel, self.dropout_p = dim, width, kernel, dropout
        self.norm = nn.LayerNorm(dim)
        self.inp = nn.Conv1d(dim, width, 1)
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2)
        self.out = nn.Conv1d(width, 1, 1)
        self.drop = nn.Dropout(dropout)

    @property
    def config(self) -> dict:
        return {"dim": self.dim, "width": self.width, "kernel": self.kernel, "dropout": self.dropout_p,
                "temperature": self.temperature}

    @property
    def receptive_frames(self) -> int:
        layers = [AxisGeometry(1), AxisGeometry(self.kernel, pad_left=self.kernel // 2), AxisGeometry(1)]
        return receptive_field(layers).size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, dim]`` encoder frames -> ``[B, T]`` keyword logits."""
        hidden = self.drop(self.norm(frames.float())).transpose(1, 2)
        hidden = F.gelu(self.inp(hidden))
        hidden = F.gelu(self.conv(hidden)) + hidden
        return self.out(self.drop(hidden))[:, 0]

    @torch.no_grad()
    def score_frames(self, frames, block: int = 3000) -> torch.Tensor:
        """Keyword probabilities of a whole recording's frames ``[T, dim]`` (tensor or array) -> ``[T]``, in
        blocks with enough neighbouring frames that the result equals one pass over all of them."""
        frames = torch.as_tensor(frames)
        context = self.receptive_frames // 2
        was_training = self.training
        self.eval()
        scores = []
        for start in range(0, len(frames), block):
            lo = max(0, start - context)
            piece = frames[lo: start + block + context][None]
            scores.append(torch.sigmoid(self(piece) / self.temperature)[0, start - lo: start - lo + block])
        self.train(was_training)
        return torch.cat(scores) if scores else torch.zeros(0)


def whisper_keyword_head(dim: int = 384, **options) -> WhisperKeywordHead:
    """The head of the benchmark's ``whisper`` stage (for whisper tiny.en: 384-dim frames; 197k parameters)."""
    return WhisperKeywordHead(dim=dim, **options)
