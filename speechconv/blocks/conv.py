"""Conv-pool blocks: convolution (+ batch norm) + activation + optional pooling, over time (1-D) or
time x frequency / image (2-D). The last axis is time (or image width) and is the streaming axis."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from speechconv.blocks import functional as SF
from speechconv.blocks.fft import direct_conv, fft_conv
from speechconv.blocks.pooling import POOL_TYPES, LearnedPool, pool_values
from speechconv.blocks.streaming import State, StreamingModule, take_windows
from speechconv.errors import ConfigError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "none": nn.Identity,
}


def make_activation(name: str | None) -> nn.Module:
    key = "none" if name is None else name.lower()
    if key not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def _tuple(value, nd: int) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != nd:
            raise ConfigError(f"expected {nd} values, got {list(value)}")
        return tuple(value)
    return (value,) * nd


class _ConvPoolNd(StreamingModule):
    nd = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        padding: str | Sequence[str] = "causal",
        groups: int = 1,
        bias: bool = True,
        batch_norm: bool = False,
        activation: str | None = "relu",
        pool: str | None = None,
        pool_size: int | Sequence[int] = 2,
        pool_stride: int | Sequence[int] | None = None,
        pool_padding: str = "valid",
        pool_hidden: int = 4,
        conv_impl: str = "direct",
        dropout: float = 0.0,
    ):
        super().__init__()
        nd = self.nd
        self.kernel_size = _tuple(kernel_size, nd)
        self.stride = _tuple(stride, nd)
        self.dilation = _tuple(dilation, nd)
        self.padding = _tuple(padding, nd)
        for mode in self.padding:
            if mode not in SF.PADDING_MODES:
                raise ConfigError(f"unknown padding {mode!r}; choose from {SF.PADDING_MODES}")
        if "causal" in self.padding[:-1]:
            raise ConfigError("causal padding applies to the last (time) axis only")
        if conv_impl not in ("direct", "fft"):
            raise ConfigError(f"conv_impl must be 'direct' or 'fft', not {conv_impl!r}")
        if pool is not None and pool not in POOL_TYPES:
            raise ConfigError(f"unknown pool {pool!r}; choose from {POOL_TYPES}")
        if pool_padding not in ("valid", "causal"):
            raise ConfigError(f"pool_padding must be 'valid' or 'causal', not {pool_padding!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.conv_impl = conv_impl
        self.pads = [SF.padding_amounts(m, k, d) for m, k, d in zip(self.padding, self.kernel_size, self.dilation)]
        conv_cls = nn.Conv1d if nd == 1 else nn.Conv2d
        self.conv = conv_cls(
            in_channels, out_channels, self.kernel_size, self.stride, 0, self.dilation, groups, bias and not batch_norm
        )
        bn_cls = nn.BatchNorm1d if nd == 1 else nn.BatchNorm2d
        self.norm = bn_cls(out_channels) if batch_norm else nn.Identity()
        self.activation = make_activation(activation)
        self.pool_type = pool
        self.pool_size = _tuple(pool_size, nd)
        self.pool_stride = _tuple(pool_stride, nd) if pool_stride is not None else self.pool_size
        self.pool_padding = pool_padding
        if pool == "learned":
            self.pool = LearnedPool(nd, self.pool_size, self.pool_stride, pool_hidden)
        elif pool == "conv1x1":
            self.pool = conv_cls(out_channels, out_channels, 1, self.pool_stride)
        else:
            self.pool = None
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    # --- geometry and cost -------------------------------------------------------------------
    @property
    def streamable(self) -> bool:  # type: ignore[override]
        return self.padding[-1] != "same"

    def _pool_span(self) -> tuple[int, ...]:
        return (1,) * self.nd if self.pool_type == "conv1x1" else self.pool_size

    def _pool_pad_left(self) -> int:
        return self._pool_span()[-1] - 1 if self.pool_padding == "causal" else 0

    def geometry(self) -> list[SF.AxisGeometry]:
        geoms = [SF.AxisGeometry(self.kernel_size[-1], self.stride[-1], self.dilation[-1], self.pads[-1][0])]
        if self.pool_type is not None:
            geoms.append(SF.AxisGeometry(self._pool_span()[-1], self.pool_stride[-1], 1, self._pool_pad_left()))
        return geoms

    def conv_output_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        return tuple(
            SF.conv_output_size(n, k, s, d, pl, pr)
            for n, k, s, d, (pl, pr) in zip(spatial, self.kernel_size, self.stride, self.dilation, self.pads)
        )

    def pool_output_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        if self.pool_type is None:
            return tuple(spatial)
        spans = self._pool_span()
        lefts = [0] * (self.nd - 1) + [self._pool_pad_left()]
        return tuple(
            SF.conv_output_size(n, k, s, 1, pl, 0) for n, k, s, pl in zip(spatial, spans, self.pool_stride, lefts)
        )

    def output_shape(self, in_shape: Sequence[int]) -> tuple[int, ...]:
        """(C_out, *spatial) for an input of shape (C_in, *spatial)."""
        return (self.out_channels,) + self.pool_output_shape(self.conv_output_shape(in_shape[1:]))

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        conv_shape = self.conv_output_shape(in_shape[1:])
        macs = SF.conv_macs(self.in_channels, self.out_channels, self.kernel_size, conv_shape, self.groups)
        pooled = self.pool_output_shape(conv_shape)
        if self.pool_type == "learned":
            macs += self.pool.count_macs(self.out_channels, pooled)
        elif self.pool_type == "conv1x1":
            macs += SF.conv_macs(self.out_channels, self.out_channels, 1, pooled)
        return macs

    # --- computation -------------------------------------------------------------------------
    def _convolve(self, x: torch.Tensor, time_pad: tuple[int, int]) -> torch.Tensor:
        pads = list(self.pads[:-1]) + [time_pad]
        conv = fft_conv if self.conv_impl == "fft" else direct_conv
        return conv(x, self.conv.weight, self.conv.bias, self.stride, self.dilation, pads, self.groups)

    def _pool(self, y: torch.Tensor) -> torch.Tensor:
        if self.pool_type in ("max", "avg"):
            return pool_values(self.pool_type, y, self.pool_size, self.pool_stride)
        return self.pool(y)

    def _empty(self, x: torch.Tensor, channels: int, spatial: Sequence[int]) -> torch.Tensor:
        return x.new_zeros((x.shape[0], channels) + tuple(spatial[:-1]) + (0,))

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        state = state or {}
        new_state: State = {}
        if self.padding[-1] == "same":
            if state:
                raise ConfigError("a block with 'same' padding on the time axis cannot stream; use 'causal'")
            y = self._convolve(x, self.pads[-1])
        else:
            span = SF.effective_kernel(self.kernel_size[-1], self.dilation[-1])
            ready, n_out, entries = take_windows(x, state, "conv", self.pads[-1][0], span, self.stride[-1])
            new_state.update(entries)
            if n_out:
                y = self._convolve(ready, (0, 0))
            else:
                y = self._empty(x, self.out_channels, self.conv_output_shape(x.shape[2:]))
        y = self.activation(self.norm(y))
        if self.pool_type is not None:
            fill = -math.inf if self.pool_type == "max" else 0.0
            span = self._pool_span()[-1]
            ready, n_out, entries = take_windows(
                y, state, "pool", self._pool_pad_left(), span, self.pool_stride[-1], fill
            )
            new_state.update(entries)
            y = self._pool(ready) if n_out else self._empty(y, self.out_channels, self.pool_output_shape(y.shape[2:]))
        return self.dropout(y), new_state


class ConvPool1d(_ConvPoolNd):
    """1-D conv-pool block over time. Input and output are (batch, channels, time).

    ``padding`` is ``"causal"`` (streaming; all padding on the left), ``"valid"`` or ``"same"``
    (symmetric, offline only). ``pool`` is ``None``, ``"max"``, ``"avg"``, ``"learned"`` or ``"conv1x1"``.
    ``conv_impl="fft"`` computes the convolution in the transform domain with identical results.
    """

    nd = 1


class ConvPool2d(_ConvPoolNd):
    """2-D conv-pool block. Input and output are (batch, channels, height/frequency, width/time).

    ``padding`` is one mode for both axes or a pair ``(freq_mode, time_mode)``; only the last axis may be
    causal, and only it streams.
    """

    nd = 2
