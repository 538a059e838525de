"""Residual and parallel-branch containers of conv-pool blocks."""

from __future__ import annotations

import torch
from torch import nn

from speechconv.blocks.conv import make_activation
from speechconv.blocks.functional import AxisGeometry, receptive_field
from speechconv.blocks.streaming import Cache, StreamingModule, add_prefix, sub_cache


class Residual(StreamingModule):
    """``activation(body(x) + shortcut(x))``; the shortcut is the identity when ``None``.

    For streaming, body and shortcut must have the same total stride and both be causal, so that output
    ``t`` of each ends at the same input frame; then chunked and offline outputs agree.
    """

    def __init__(self, body: StreamingModule, shortcut: StreamingModule | None = None, activation: str = "relu"):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.activation = make_activation(activation)

    @property
    def streamable(self) -> bool:  # type: ignore[override]
        return self.body.streamable and (self.shortcut is None or self.shortcut.streamable)

    def geometry(self) -> list[AxisGeometry]:
        return self.body.geometry()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.body.output_shape(in_shape)

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        shortcut = self.shortcut.count_macs(in_shape) if self.shortcut is not None else 0
        return self.body.count_macs(in_shape) + shortcut

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        y, body_cache = self.body(x, sub_cache(cache, "body."))
        new_cache = add_prefix(body_cache, "body.")
        if self.shortcut is None:
            skip = self._align_identity(x, y, cache, new_cache)
        else:
            skip, short_cache = self.shortcut(x, sub_cache(cache, "shortcut."))
            new_cache.update(add_prefix(short_cache, "shortcut."))
        return self.activation(y + skip), new_cache

    def _align_identity(self, x: torch.Tensor, y: torch.Tensor, cache: Cache | None, new_cache: Cache):
        """Identity shortcut: with causal stride-1 bodies, output frames line up with the newest input frames.
        Frames the body has not produced yet wait in the cache."""
        pending = (cache or {}).get("identity")
        joined = x if pending is None else torch.cat([pending, x], dim=-1)
        n = y.shape[-1]
        new_cache["identity"] = joined[..., n:]
        return joined[..., :n]


class Parallel(StreamingModule):
    """Runs branches on the same input and concatenates their outputs on the channel axis (inception)."""

    def __init__(self, *branches: StreamingModule):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    @property
    def streamable(self) -> bool:  # type: ignore[override]
        return all(b.streamable for b in self.branches)

    def geometry(self) -> list[AxisGeometry]:
        """The branch with the widest receptive field."""
        return max((b.geometry() for b in self.branches), key=lambda g: receptive_field(g).size)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        shapes = [b.output_shape(in_shape) for b in self.branches]
        return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        return sum(b.count_macs(in_shape) for b in self.branches)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        outs, new_cache = [], {}
        for i, branch in enumerate(self.branches):
            y, c = branch(x, sub_cache(cache, f"{i}."))
            outs.append(y)
            new_cache.update(add_prefix(c, f"{i}."))
        return torch.cat(outs, dim=1), new_cache
