"""Residual and parallel-branch containers of conv-pool blocks."""

from __future__ import annotations

import torch
from torch import nn

from speechconv.blocks.conv import make_activation
from speechconv.blocks.functional import AxisGeometry, receptive_field
from speechconv.blocks.streaming import State, StreamingModule, add_prefix, sub_state


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        skip = self._align_identity(x, y, None, {}) if self.shortcut is None else self.shortcut(x)
        return self.activation(y + skip)

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        y, body_state = self.body.stream(x, sub_state(state, "body."))
        new_state = add_prefix(body_state, "body.")
        if self.shortcut is None:
            skip = self._align_identity(x, y, state, new_state)
        else:
            skip, short_state = self.shortcut.stream(x, sub_state(state, "shortcut."))
            new_state.update(add_prefix(short_state, "shortcut."))
        return self.activation(y + skip), new_state

    def _align_identity(self, x: torch.Tensor, y: torch.Tensor, state: State | None, new_state: State):
        """Identity shortcut: with causal stride-1 bodies, output frames line up with the newest input frames.
        Frames the body has not produced yet wait in the state."""
        pending = (state or {}).get("identity")
        joined = x if pending is None else torch.cat([pending, x], dim=-1)
        n = y.shape[-1]
        new_state["identity"] = joined[..., n:]
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        outs, new_state = [], {}
        for i, branch in enumerate(self.branches):
            y, c = branch.stream(x, sub_state(state, f"{i}."))
            outs.append(y)
            new_state.update(add_prefix(c, f"{i}."))
        return torch.cat(outs, dim=1), new_state
