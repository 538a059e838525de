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
        return self.classifier(self.features(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def count_macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates for one image of ``input_shape``, from the block math (no forward pass)."""
        return self.features.count_macs(input_shape) + self.classifier.count_macs(
            self.features.output_shape(input_shape))
