"""Fully connected block: optional flatten, linear layer, activation and dropout."""

from __future__ import annotations

import math

import torch
from torch import nn

from speechconv.blocks import functional as SF
from speechconv.blocks.conv import make_activation
from speechconv.blocks.streaming import StreamingModule


class Dense(StreamingModule):
    """``dropout(activation(linear(flatten(x))))``. It sees the whole input, so it does not stream."""

    streamable = False

    def __init__(self, in_features: int, out_features: int, activation: str | None = "relu",
                 dropout: float = 0.0, flatten: bool = True):
        super().__init__()
        self.flatten = flatten
        self.linear = nn.Linear(in_features, out_features)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten:
            x = x.flatten(1)
        return self.dropout(self.activation(self.linear(x)))

    def geometry(self) -> list[SF.AxisGeometry]:
        return []

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.linear.out_features,)

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        assert math.prod(in_shape) == self.linear.in_features or not self.flatten
        return SF.linear_macs(self.linear.in_features, self.linear.out_features)
