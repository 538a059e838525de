"""Depthwise-separable convolution (Howard et al. 2017, as in DS-CNN): a depthwise conv-pool block
(``groups = channels``, one filter per channel) followed by a pointwise 1x1 conv-pool block.

Parameters ``C * (prod(k) + 1) + C_out * (C + 1)`` (with bias) instead of ``C_out * (C * prod(k) + 1)``.
"""

from __future__ import annotations

from typing import Sequence

from speechconv.blocks.conv import ConvPool1d, ConvPool2d
from speechconv.blocks.streaming import StreamingSequential
from speechconv.errors import ConfigError


class DepthwiseSeparable(StreamingSequential):
    """Depthwise then pointwise conv-pool block (each with optional batch norm and activation).

    ``nd=2``: input (batch, C, frequency, time), ``padding`` one mode or (freq_mode, time_mode);
    ``nd=1``: input (batch, C, time). Reported as one unit by ``inspect``.
    """

    is_unit = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        padding: str | Sequence[str] = ("same", "causal"),
        batch_norm: bool = True,
        activation: str | None = "relu",
        dropout: float = 0.0,
        nd: int = 2,
        conv_impl: str = "direct",
    ):
        if nd not in (1, 2):
            raise ConfigError(f"DepthwiseSeparable: nd must be 1 or 2, got {nd!r}")
        block = ConvPool2d if nd == 2 else ConvPool1d
        common = dict(padding=padding, batch_norm=batch_norm, activation=activation, conv_impl=conv_impl)
        super().__init__(
            block(in_channels, in_channels, kernel_size, stride, dilation, groups=in_channels, **common),
            block(in_channels, out_channels, 1, dropout=dropout, **common),
        )
        self.in_channels = in_channels
        self.out_channels = out_channels

    @property
    def depthwise(self) -> ConvPool1d | ConvPool2d:
        return self.layers[0]

    @property
    def pointwise(self) -> ConvPool1d | ConvPool2d:
        return self.layers[1]
