"""Interface shared by the image models: a feature extractor of conv-pool blocks and a classifier."""

from __future__ import annotations

import torch
from torch import nn

from speechconv.blocks.streaming import StreamingSequential


class ImageModel(nn.Module):
    """``classifier(features(x))``: images (batch, channels, height, width) -> logits (batch, classes)."""

    features: StreamingSequential
    classifier: StreamingSequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.features(x)
        x, _ = self.classifier(x)
        return x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
