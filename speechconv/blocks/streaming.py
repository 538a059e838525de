"""Streaming along the last (time) axis: states, windowing, and containers that thread states through layers.

Every streamable module (blocks, models, front-ends, the spotter) follows one contract: ``forward(x) -> y``
offline and ``stream(x, state) -> (y, new_state)`` for a stream (wekws' ``forward(x, cache)``, split so
that offline callers get a tensor). ``state`` is a flat ``dict[str, Tensor]`` (:data:`State`); ``None``
or ``{}`` is the start of a stream, and the input state is never modified. Causal left padding is the
initial state, so feeding a sequence in chunks gives exactly the outputs of one offline call.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from speechconv.blocks.functional import AxisGeometry, ReceptiveField, receptive_field
from speechconv.errors import ConfigError

State = dict[str, torch.Tensor]


def sub_state(state: State | None, prefix: str) -> State | None:
    """Entries of ``state`` under ``prefix`` with the prefix removed (None when there are none)."""
    if not state:
        return None
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return out or None


def add_prefix(state: State, prefix: str) -> State:
    return {prefix + k: v for k, v in state.items()}


def take_windows(
    x: torch.Tensor,
    state: State | None,
    key: str,
    pad_left: int,
    span: int,
    stride: int,
    fill: float = 0.0,
) -> tuple[torch.Tensor, int, State]:
    """Join the cached tail with new input and cut out the complete windows along the last axis.

    Returns ``(ready, n_out, new_entries)``: ``ready`` holds exactly the samples that ``n_out`` windows
    of ``span`` with ``stride`` cover, and ``new_entries`` is this layer's new state: the tail from the
    next window on (``key``), plus, when ``stride > span``, how many future samples to skip
    (``key + "_skip"``). A missing tail is ``pad_left`` samples of ``fill`` (causal padding). When the
    chunk length is a multiple of ``stride``, every state entry keeps its shape from step to step.
    """
    state = state or {}
    tail = state.get(key)
    if tail is None:
        tail = x.new_full(x.shape[:-1] + (pad_left,), fill)
    skip_key = key + "_skip"
    if stride > span and skip_key in state:
        skip = int(state[skip_key].item())
        dropped = min(skip, x.shape[-1])
        x = x[..., dropped:]
        skip -= dropped
        if skip:  # still skipping: nothing new to compute
            return x[..., :0], 0, {key: tail, skip_key: torch.tensor([skip])}
    buf = torch.cat([tail, x], dim=-1)
    length = buf.shape[-1]
    n_out = (length - span) // stride + 1 if length >= span else 0
    consumed = n_out * stride
    ready = buf[..., : (n_out - 1) * stride + span] if n_out else buf[..., :0]
    entries = {key: buf[..., consumed:]}
    if stride > span:
        entries[skip_key] = torch.tensor([max(consumed - length, 0)])
    return ready, n_out, entries


class StreamingModule(nn.Module):
    """Base class of blocks with the ``forward(x) -> y`` / ``stream(x, state) -> (y, new_state)`` contract.

    A block that keeps state overrides :meth:`stream` (its offline ``forward`` is the stream's first call);
    a block that keeps none (per-frame blocks, and blocks that see a whole input, ``streamable = False``)
    overrides ``forward``. Containers override both, so that offline forward hooks reach every unit.

    Subclasses describe their geometry along the time axis (for receptive fields) and count their MACs
    from an input shape, both with the pure functions of :mod:`speechconv.blocks.functional`.
    """

    streamable: bool = True
    #: True for blocks that ``inspect`` reports as one row (containers are not units).
    is_unit: bool = True

    def geometry(self) -> list[AxisGeometry]:
        return []

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates for one example of shape ``in_shape`` (no batch axis)."""
        return 0

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one example's output (no batch axis); shape-preserving blocks keep the default."""
        return tuple(in_shape)

    def receptive_field(self) -> ReceptiveField:
        return receptive_field(self.geometry())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if type(self).stream is StreamingModule.stream:
            raise NotImplementedError(f"{type(self).__name__} overrides neither forward nor stream")
        return self.stream(x, None)[0]

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state:
            what = "keeps no streaming state" if self.streamable else "sees its whole input and cannot stream"
            raise ConfigError(f"{type(self).__name__} {what}; got state {sorted(state)}")
        return self(x), {}


class StreamingSequential(StreamingModule):
    """Runs streaming blocks in order, each with its own slice of the state (keys prefixed ``"i."``)."""

    is_unit = False

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    @property
    def streamable(self) -> bool:  # type: ignore[override]
        return all(getattr(layer, "streamable", True) for layer in self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        new_state: State = {}
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            if isinstance(layer, StreamingModule):
                x, c = layer.stream(x, sub_state(state, prefix))
                new_state.update(add_prefix(c, prefix))
            else:  # stateless per-frame module (activation, 1x1 layers, dropout)
                x = layer(x)
        return x, new_state

    def geometry(self) -> list[AxisGeometry]:
        return compose_geometry(self.layers)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            if isinstance(layer, StreamingModule):
                in_shape = layer.output_shape(in_shape)
        return in_shape

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        total = 0
        for layer in self.layers:
            if isinstance(layer, StreamingModule):
                total += layer.count_macs(in_shape)
                in_shape = layer.output_shape(in_shape)
        return total



def compose_geometry(modules: Iterable[nn.Module]) -> list[AxisGeometry]:
    return [g for m in modules if isinstance(m, StreamingModule) for g in m.geometry()]
