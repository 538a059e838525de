"""Stateless shape changes between 2-D (channels x frequency x time) and 1-D (channels x time) blocks.

They act on each frame on its own, so they stream trivially and leave the time geometry unchanged.
"""

from __future__ import annotations

import torch

from speechconv.blocks.streaming import StreamingModule
from speechconv.errors import ConfigError


class AddChannelAxis(StreamingModule):
    """(batch, frequency, time) features -> (batch, 1, frequency, time) single-channel images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (1,) + tuple(in_shape)


class FlattenFrequency(StreamingModule):
    """(batch, channels, frequency, time) -> (batch, channels * frequency, time), channel-major."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1, 2)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, freq, time = in_shape
        return (channels * freq, time)


class PoolFrequency(StreamingModule):
    """Average or max over the whole frequency axis: (batch, C, F, time) -> (batch, C, time)."""

    def __init__(self, mode: str = "avg"):
        super().__init__()
        if mode not in ("avg", "max"):
            raise ConfigError(f"frequency pooling must be 'avg' or 'max', not {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2) if self.mode == "avg" else x.amax(dim=2)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, _, time = in_shape
        return (channels, time)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
