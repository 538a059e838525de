"""Pure math of convolution and pooling layers: sizes, padding, parameters, MACs, receptive fields.

Layers call these functions; tests check them against the closed-form expressions:

- valid output size: ``floor((N - M) / S) + 1`` with effective kernel ``M = (L - 1) * dilation + 1``;
- ``same`` padding: ``PL + PR = M - 1`` with ``|PL - PR| <= 1`` (the extra sample goes right);
- ``causal`` padding: all ``M - 1`` samples on the left, so output ``t`` ends at input ``t * S``;
- parameters of layer J: ``K_J * (K_{J-1} * L_J^2 + 1)`` (square kernels, with bias).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

PADDING_MODES = ("valid", "same", "causal")


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span in input samples of a dilated kernel: ``(L - 1) * d + 1``."""
    if kernel < 1 or dilation < 1:
        raise ValueError(f"kernel and dilation must be >= 1, got {kernel}, {dilation}")
    return (kernel - 1) * dilation + 1


def padding_amounts(mode: str, kernel: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) zero padding for ``valid``, ``same`` or ``causal`` mode."""
    span = effective_kernel(kernel, dilation)
    if mode == "valid":
        return 0, 0
    if mode == "same":
        total = span - 1
        return total // 2, total - total // 2
    if mode == "causal":
        return span - 1, 0
    raise ValueError(f"unknown padding mode {mode!r}; expected one of {PADDING_MODES}")


def conv_output_size(
    n: int, kernel: int, stride: int = 1, dilation: int = 1, pad_left: int = 0, pad_right: int = 0
) -> int:
    """Output length of a 1-D convolution or pooling along one axis (0 if the input is too short)."""
    span = effective_kernel(kernel, dilation)
    padded = n + pad_left + pad_right
    if padded < span:
        return 0
    return (padded - span) // stride + 1


def output_size(n: int, kernel: int, stride: int = 1, dilation: int = 1, padding: str = "valid") -> int:
    """Output length for a named padding mode."""
    left, right = padding_amounts(padding, kernel, dilation)
    return conv_output_size(n, kernel, stride, dilation, left, right)


def conv_params(
    in_channels: int, out_channels: int, kernel_size: int | Sequence[int], groups: int = 1, bias: bool = True
) -> int:
    """Weights plus biases of a convolution: ``K_out * (K_in / groups * prod(L) + 1)``."""
    kernel = _as_tuple(kernel_size)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels {in_channels}->{out_channels} not divisible by groups={groups}")
    return out_channels * ((in_channels // groups) * math.prod(kernel) + (1 if bias else 0))


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    return out_features * (in_features + (1 if bias else 0))


def batch_norm_params(channels: int, affine: bool = True) -> int:
    """Trainable parameters of batch norm (running statistics are buffers, not parameters)."""
    return 2 * channels if affine else 0


def conv_macs(
    in_channels: int, out_channels: int, kernel_size: int | Sequence[int], output_shape: Sequence[int], groups: int = 1
) -> int:
    """Multiply-accumulates of one convolution for one example: outputs x inputs per output."""
    kernel = _as_tuple(kernel_size)
    return out_channels * math.prod(output_shape) * (in_channels // groups) * math.prod(kernel)


def linear_macs(in_features: int, out_features: int) -> int:
    return in_features * out_features


@dataclass(frozen=True)
class AxisGeometry:
    """How one layer maps positions along an axis: kernel, stride, dilation and left padding."""

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_left: int = 0

    @property
    def span(self) -> int:
        return effective_kernel(self.kernel, self.dilation)


@dataclass(frozen=True)
class ReceptiveField:
    """Output unit ``t`` sees inputs ``[offset + t * stride, offset + t * stride + size - 1]``.

    ``offset`` is negative when left padding reaches before the first input sample.
    """

    size: int = 1
    stride: int = 1
    offset: int = 0

    def span_of(self, t: int) -> tuple[int, int]:
        start = self.offset + t * self.stride
        return start, start + self.size - 1

    def then(self, layer: AxisGeometry) -> "ReceptiveField":
        """Receptive field after stacking ``layer`` on top of this one."""
        return ReceptiveField(
            size=self.size + (layer.span - 1) * self.stride,
            stride=self.stride * layer.stride,
            offset=self.offset - layer.pad_left * self.stride,
        )

    def seconds(self, hop_length: int, win_length: int, sample_rate: int) -> float:
        """Duration in seconds when input positions are spectrogram frames."""
        return ((self.size - 1) * hop_length + win_length) / sample_rate


def receptive_field(layers: Iterable[AxisGeometry]) -> ReceptiveField:
    """Compose the receptive field of a stack of layers along one axis."""
    field = ReceptiveField()
    for layer in layers:
        field = field.then(layer)
    return field


def context_to_kernel(context: Sequence[int]) -> tuple[int, int]:
    """TDNN context offsets (e.g. ``[-3, 0, 3]`` or ``[-1, 2]``) -> (kernel, dilation).

    Offsets must be evenly spaced; a single offset ``[0]`` is a 1x1 layer.
    """
    offsets = sorted(context)
    if len(offsets) == 1:
        return 1, 1
    steps = {b - a for a, b in zip(offsets, offsets[1:])}
    if len(steps) != 1 or 0 in steps:
        raise ValueError(f"TDNN context {list(context)} must be evenly spaced and distinct")
    return len(offsets), steps.pop()


def _as_tuple(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
    return (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
