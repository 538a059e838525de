"""Pooling operators of the conv-pool blocks: max, mean, learned, and 1x1 convolution."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechconv.blocks import functional as SF

POOL_TYPES = ("max", "avg", "learned", "conv1x1")


class LearnedPool(nn.Module):
    """Network-in-network pooling: one small network shared by every channel and every PxP block.

    Each block of ``size`` samples with step ``stride`` is mapped to one value by
    ``conv(size -> hidden) -> ReLU -> conv1x1(hidden -> 1)``; the same weights serve all channels.
    """

    def __init__(self, nd: int, size: Sequence[int], stride: Sequence[int], hidden: int = 4):
        super().__init__()
        conv = nn.Conv1d if nd == 1 else nn.Conv2d
        self.nd = nd
        self.hidden = hidden
        self.size = tuple(size)
        self.stride = tuple(stride)
        self.net = nn.Sequential(conv(1, hidden, self.size, self.stride), nn.ReLU(), conv(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels = x.shape[:2]
        y = self.net(x.reshape(batch * channels, 1, *x.shape[2:]))
        return y.reshape(batch, channels, *y.shape[2:])

    def count_macs(self, channels: int, out_shape: Sequence[int]) -> int:
        per_channel = SF.conv_macs(1, self.hidden, self.size, out_shape) + SF.conv_macs(
            self.hidden, 1, 1, out_shape
        )
        return channels * per_channel


def pool_values(kind: str, x: torch.Tensor, size: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """Plain max or mean pooling over already padded input."""
    if kind == "max":
        return (F.max_pool1d if len(size) == 1 else F.max_pool2d)(x, tuple(size), tuple(stride))
    if kind == "avg":
        return (F.avg_pool1d if len(size) == 1 else F.avg_pool2d)(x, tuple(size), tuple(stride))
    raise ValueError(f"pool_values handles 'max' and 'avg', not {kind!r}")
