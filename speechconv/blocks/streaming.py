"""Streaming along the last (time) axis: caches, windowing, and containers that thread caches through layers.

Every temporal block follows one contract (as in wekws): ``forward(x, cache=None) -> (y, new_cache)``.
``cache`` is a flat ``dict[str, Tensor]``; ``None`` or ``{}`` is the start of a stream, which is also
offline mode. Causal left padding is the initial cache, so feeding a sequence in chunks gives exactly
the outputs of one offline call.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from speechconv.blocks.functional import AxisGeometry, ReceptiveField, receptive_field

Cache = dict[str, torch.Tensor]


def sub_cache(cache: Cache | None, prefix: str) -> Cache | None:
    """Entries of ``cache`` under ``prefix`` with the prefix removed (None when there are none)."""
    if not cache:
        return None
    out = {k[len(prefix):]: v for k, v in cache.items() if k.startswith(prefix)}
    return out or None


def add_prefix(cache: Cache, prefix: str) -> Cache:
    return {prefix + k: v for k, v in cache.items()}


def take_windows(
    x: torch.Tensor,
    cache: Cache | None,
    key: str,
    pad_left: int,
    span: int,
    stride: int,
    fill: float = 0.0,
) -> tuple[torch.Tensor, int, Cache]:
    """Join the cached tail with new input and cut out the complete windows along the last axis.

    Returns ``(ready, n_out, new_entries)``: ``ready`` holds exactly the samples that ``n_out`` windows
    of ``span`` with ``stride`` cover, and ``new_entries`` is this layer's new cache: the tail from the
    next window on (``key``), plus, when ``stride > span``, how many future samples to skip
    (``key + "_skip"``). A missing tail is ``pad_left`` samples of ``fill`` (causal padding). When the
    chunk length is a multiple of ``stride``, every cache entry keeps its shape from step to step.
    """
    cache = cache or {}
    tail = cache.get(key)
    if tail is None:
        tail = x.new_full(x.shape[:-1] + (pad_left,), fill)
    skip_key = key + "_skip"
    if stride > span and skip_key in cache:
        skip = int(cache[skip_key].item())
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
    """Base class of blocks with the ``forward(x, cache) -> (y, new_cache)`` contract.

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

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Offline output only (convenience for code that has no use for the cache)."""
        return self(x)[0]


class StreamingSequential(StreamingModule):
    """Runs streaming blocks in order, each with its own slice of the cache (keys prefixed ``"i."``)."""

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

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        new_cache: Cache = {}
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            if isinstance(layer, StreamingModule):
                x, c = layer(x, sub_cache(cache, prefix))
                new_cache.update(add_prefix(c, prefix))
            else:  # stateless per-frame module (activation, 1x1 layers, dropout)
                x = layer(x)
        return x, new_cache

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
