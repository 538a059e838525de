"""Transform-domain convolution: the same result as ``torch.nn.functional.conv{1,2}d`` computed with FFTs.

Cross-correlation of a length-N signal with a span-M kernel is read off the circular correlation
``irfft(rfft(x) * conj(rfft(w)))`` at lags ``0 .. N - M``, where no wrap-around occurs; stride keeps every
S-th lag. The cost is O(N log N) per channel pair instead of O(N M), so it wins for large kernels
(``benchmarks/fft_conv.py`` finds the break-even size on the machine at hand).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def dilate_kernel(weight: torch.Tensor, dilation: Sequence[int]) -> torch.Tensor:
    """Insert ``d - 1`` zeros between taps along each of the trailing ``len(dilation)`` axes."""
    nd = len(dilation)
    if all(d == 1 for d in dilation):
        return weight
    spans = [(k - 1) * d + 1 for k, d in zip(weight.shape[-nd:], dilation)]
    out = weight.new_zeros(weight.shape[:-nd] + tuple(spans))
    index = (Ellipsis,) + tuple(slice(None, None, d) for d in dilation)
    out[index] = weight
    return out


def fft_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Sequence[int] | int = 1,
    dilation: Sequence[int] | int = 1,
    padding: Sequence[tuple[int, int]] | None = None,
    groups: int = 1,
) -> torch.Tensor:
    """N-d (1-D or 2-D) convolution via FFT.

    x: (B, C_in, *spatial); weight: (C_out, C_in / groups, *kernel); padding: (left, right) per spatial axis.
    Equals ``F.conv{nd}d(F.pad(x, padding), weight, bias, stride, 0, dilation, groups)``.
    """
    nd = weight.dim() - 2
    stride = _per_axis(stride, nd)
    dilation = _per_axis(dilation, nd)
    if padding is not None:
        flat = [p for pair in reversed(list(padding)) for p in pair]
        if any(flat):
            x = F.pad(x, flat)
    w = dilate_kernel(weight, dilation)
    sizes = x.shape[-nd:]
    spans = w.shape[-nd:]
    if any(n < m for n, m in zip(sizes, spans)):
        raise ValueError(f"input {tuple(sizes)} shorter than kernel span {tuple(spans)}")
    dims = tuple(range(-nd, 0))
    x_f = torch.fft.rfftn(x, s=sizes, dim=dims)
    w_f = torch.fft.rfftn(w, s=sizes, dim=dims).conj()
    batch, c_in = x.shape[:2]
    c_out = w.shape[0]
    freq_shape = x_f.shape[2:]
    x_f = x_f.reshape(batch, groups, c_in // groups, *freq_shape)
    w_f = w_f.reshape(groups, c_out // groups, c_in // groups, *freq_shape)
    y_f = torch.einsum("bgi...,goi...->bgo...", x_f, w_f).reshape(batch, c_out, *freq_shape)
    y = torch.fft.irfftn(y_f, s=sizes, dim=dims)
    valid = tuple(slice(0, n - m + 1, s) for n, m, s in zip(sizes, spans, stride))
    y = y[(Ellipsis,) + valid]
    if bias is not None:
        y = y + bias.view((1, -1) + (1,) * nd)
    return y.contiguous()


def direct_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Sequence[int] | int = 1,
    dilation: Sequence[int] | int = 1,
    padding: Sequence[tuple[int, int]] | None = None,
    groups: int = 1,
) -> torch.Tensor:
    """The direct (im2col/cuDNN/oneDNN) path with the same signature as :func:`fft_conv`."""
    nd = weight.dim() - 2
    if padding is not None:
        flat = [p for pair in reversed(list(padding)) for p in pair]
        if any(flat):
            x = F.pad(x, flat)
    conv = F.conv1d if nd == 1 else F.conv2d
    return conv(x, weight, bias, _per_axis(stride, nd), 0, _per_axis(dilation, nd), groups)


def _per_axis(value: Sequence[int] | int, nd: int) -> tuple[int, ...]:
    return (value,) * nd if isinstance(value, int) else tuple(value)
