"""Time-delay layers (Waibel et al. 1989): a convolution over time whose taps sit at context offsets.

A layer with context ``[-2, -1, 0, 1, 2]`` is kernel 5; ``[-1, 2]`` is kernel 2 with dilation 3
(Peddinti et al. 2015). The layer runs as a *causal* convolution: output ``t`` ends at input
``t * stride``, so it describes input frame ``t * stride - right_context`` and waits ``right_context``
frames for it. Stacked, these waits add up to the network's look-ahead (:func:`stack_lookahead`).
"""

from __future__ import annotations

from typing import Sequence

from speechconv.blocks.conv import ConvPool1d
from speechconv.blocks.functional import ReceptiveField, context_to_kernel
from speechconv.errors import ConfigError


def context_kernel(context: Sequence[int]) -> tuple[int, int]:
    """(kernel, dilation) of a context, with a :class:`ConfigError` for a bad one."""
    if not context:
        raise ConfigError("a TDNN context needs at least one offset, e.g. [0] or [-2, -1, 0, 1, 2]")
    try:
        return context_to_kernel(context)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def stack_lookahead(right_contexts: Sequence[int], strides: Sequence[int]) -> int:
    """Look-ahead in input frames of stacked layers: ``sum_l right_l * prod(strides before l)``.

    Layer ``l`` counts its offsets in its own input frames, which are ``prod(strides before l)`` input
    frames of the network apart.
    """
    total, rate = 0, 1
    for right, stride in zip(right_contexts, strides, strict=True):
        total += right * rate
        rate *= stride
    return total


def check_lookahead(name: str, lookahead: int, field: ReceptiveField) -> int:
    """Validate a declared look-ahead against the receptive field: ``0 <= lookahead <= size - 1``."""
    if not isinstance(lookahead, int) or not 0 <= lookahead <= field.size - 1:
        raise ConfigError(
            f"{name}: lookahead must be an int in [0, {field.size - 1}] "
            f"(receptive field {field.size} frames), got {lookahead!r}"
        )
    return lookahead


class TDNNLayer(ConvPool1d):
    """Time-delay layer from context offsets: shared weights over time, causal, optional stride.

    Input and output are (batch, channels, time). ``context`` offsets must be evenly spaced.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        context: Sequence[int] = (0,),
        stride: int = 1,
        activation: str | None = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        conv_impl: str = "direct",
    ):
        kernel, dilation = context_kernel(context)
        super().__init__(
            in_channels, out_channels, kernel, stride=stride, dilation=dilation, padding="causal",
            activation=activation, batch_norm=batch_norm, dropout=dropout, conv_impl=conv_impl,
        )
        self.context = tuple(sorted(int(c) for c in context))

    @property
    def right_context(self) -> int:
        """Frames after the described frame that the layer reads (negative if it reads only the past)."""
        return self.context[-1]

    @property
    def left_context(self) -> int:
        return -self.context[0]

    def extra_repr(self) -> str:
        return f"context={list(self.context)}"
