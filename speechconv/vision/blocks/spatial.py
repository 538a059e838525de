"""Offline image units that the conv-pool blocks do not cover: explicit zero padding, stand-alone pooling
with symmetric padding and ceil mode, adaptive and global average pooling, local response normalisation.

They see whole images (no streaming state), count no multiply-accumulates of weights, and describe their
geometry along the last (width) axis for receptive fields, like every other unit.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechconv.blocks import functional as SF
from speechconv.blocks.conv import ConvPool2d
from speechconv.blocks.streaming import StreamingModule
from speechconv.errors import ConfigError


def pool_output_size(n: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of pooling with ``padding`` on both sides.

    ``floor((n + 2p - k) / s) + 1``, or with ``ceil_mode`` ``ceil(...) + 1`` minus one when the last window
    would start in the right padding (the PyTorch / Caffe rule).
    """
    span = n + 2 * padding - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = math.ceil(span / stride) + 1
    if (out - 1) * stride >= n + padding:
        out -= 1
    return out


class _OfflineUnit(StreamingModule):
    streamable = False


class ZeroPad2d(_OfflineUnit):
    """Zero padding of ``padding`` pixels on every side (for convolutions with non-'same' explicit padding)."""

    def __init__(self, padding: int):
        super().__init__()
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding
        return F.pad(x, (p, p, p, p))

    def geometry(self) -> list[SF.AxisGeometry]:
        return [SF.AxisGeometry(1, 1, 1, self.padding)]

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (in_shape[0],) + tuple(n + 2 * self.padding for n in in_shape[1:])


def padded_conv2d(in_channels: int, out_channels: int, kernel_size: int, padding: int, **kwargs) -> list[nn.Module]:
    """A :class:`ConvPool2d` with ``padding`` zeros on every side: the 'valid' or 'same' mode when one of
    them is exactly that padding, otherwise a :class:`ZeroPad2d` unit followed by a 'valid' convolution."""
    if padding == 0:
        return [ConvPool2d(in_channels, out_channels, kernel_size, padding="valid", **kwargs)]
    if SF.padding_amounts("same", kernel_size) == (padding, padding):
        return [ConvPool2d(in_channels, out_channels, kernel_size, padding="same", **kwargs)]
    return [ZeroPad2d(padding), ConvPool2d(in_channels, out_channels, kernel_size, padding="valid", **kwargs)]


class Pool2d(_OfflineUnit):
    """Max or average pooling with symmetric ``padding`` and optional ``ceil_mode`` (GoogLeNet, ResNet stems).

    Max pooling pads with -inf; average pooling counts padded zeros (``count_include_pad``), as PyTorch does.
    """

    def __init__(self, kind: str, kernel_size: int, stride: int | None = None, padding: int = 0,
                 ceil_mode: bool = False):
        super().__init__()
        if kind not in ("max", "avg"):
            raise ConfigError(f"Pool2d kind must be 'max' or 'avg', not {kind!r}")
        if 2 * padding > kernel_size:
            raise ConfigError(f"pool padding {padding} must be at most half the kernel {kernel_size}")
        self.kind = kind
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.max_pool2d if self.kind == "max" else F.avg_pool2d
        return pool(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode)

    def geometry(self) -> list[SF.AxisGeometry]:
        return [SF.AxisGeometry(self.kernel_size, self.stride, 1, self.padding)]

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        sizes = (pool_output_size(n, self.kernel_size, self.stride, self.padding, self.ceil_mode) for n in in_shape[1:])
        return (in_shape[0],) + tuple(sizes)


class AdaptiveAvgPool2d(_OfflineUnit):
    """Average pooling to a fixed ``output_size`` whatever the input size (torchvision AlexNet/VGG heads).

    When the input already has ``output_size`` it is the identity, which is the case the declared geometry
    (none) describes; for other input sizes the windows vary from position to position.
    """

    def __init__(self, output_size: int | Sequence[int]):
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (in_shape[0],) + self.output_size


class GlobalAvgPool(_OfflineUnit):
    """Mean over all spatial positions: (B, C, H, W) -> (B, C). Each output sees the whole image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.dim())))

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (in_shape[0],)


class LocalResponseNorm(_OfflineUnit):
    """Normalisation across neighbouring channels (AlexNet, ZFNet "contrast normalisation"):
    ``b_c = a_c / (k + alpha / n * sum_{c' near c} a_{c'}^2) ** beta`` over ``size`` channels."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.norm = nn.LocalResponseNorm(size, alpha, beta, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)
