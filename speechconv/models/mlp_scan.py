"""Scanning an MLP over time, and why that is a convolution.

:class:`MLPScan` applies one MLP to the window of ``W`` feature frames that ends at each frame
(Chen et al. 2014 style keyword DNN: a stacked-frame input, hidden layers, class outputs). Computed
window by window, adjacent windows share ``W - 1`` frames, yet the first layer recomputes all of them.

The first layer's weight ``(H, F * W)`` applied to a flattened ``(F, W)`` window is a 1-D convolution
with kernel ``W`` and weight ``(H, F, W)`` evaluated at that window; every later layer acts on one
window's vector, i.e. is a 1x1 convolution. :func:`mlp_to_conv` turns a (trained) ``MLPScan`` into that
:class:`ConvScan` network of :class:`~speechconv.blocks.ConvPool1d` blocks, with identical outputs.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from speechconv.blocks import ConvPool1d, Dense, StreamingModule, StreamingSequential, take_windows
from speechconv.blocks import functional as SF
from speechconv.blocks.streaming import State
from speechconv.blocks.tdnn import check_lookahead
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import register_model


def _layer_sizes(in_features: int, window: int, hidden: Sequence[int], num_classes: int) -> list[int]:
    if window < 1 or any(h < 1 for h in hidden):
        raise ConfigError(f"mlp_scan: window and hidden sizes must be >= 1, got {window} and {list(hidden)}")
    return [in_features * window, *hidden, num_classes]


class WindowMLP(StreamingModule):
    """An MLP over the flattened causal window of ``window`` frames, evaluated every ``stride`` frames.

    Input (batch, features, time); output (batch, classes, windows). The window for output ``t`` is
    input frames ``[t * stride - window + 1, t * stride]`` (zeros before the start), flattened
    feature-major: element ``f * window + w``.
    """

    def __init__(self, in_features: int, window: int, hidden: Sequence[int], num_classes: int,
                 stride: int = 1, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        sizes = _layer_sizes(in_features, window, hidden, num_classes)
        self.in_features, self.window, self.stride = in_features, window, stride
        last = len(sizes) - 2
        self.layers = nn.ModuleList(
            Dense(a, b, activation if i < last else None, dropout if i < last else 0.0)
            for i, (a, b) in enumerate(zip(sizes, sizes[1:]))
        )

    def mlp(self, windows: torch.Tensor) -> torch.Tensor:
        """Class logits of windows: (N, features, window) or (N, features * window) -> (N, classes)."""
        x = windows.flatten(1)
        if x.shape[1] != self.in_features * self.window:
            raise ValueError(
                f"mlp_scan: windows must hold {self.in_features} x {self.window} values, "
                f"got {tuple(windows.shape[1:])}"
            )
        for layer in self.layers:
            x = layer(x)
        return x

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        ready, n_out, new_state = take_windows(x, state, "window", self.window - 1, self.window, self.stride)
        batch = x.shape[0]
        classes = self.layers[-1].linear.out_features
        if not n_out:
            return x.new_zeros(batch, classes, 0), new_state
        # a gather rather than Tensor.unfold, which the ONNX exporter gets wrong
        index = torch.arange(n_out, device=x.device)[:, None] * self.stride + torch.arange(self.window, device=x.device)
        windows = ready[..., index]  # (B, F, n_out, W)
        windows = windows.transpose(1, 2).reshape(batch * n_out, self.in_features, self.window)
        scores = self.mlp(windows).reshape(batch, n_out, classes).transpose(1, 2)
        return scores, new_state

    def geometry(self) -> list[SF.AxisGeometry]:
        return [SF.AxisGeometry(self.window, self.stride, 1, self.window - 1)]

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        frames = SF.output_size(in_shape[-1], self.window, self.stride, padding="causal")
        return (self.layers[-1].linear.out_features, frames)

    def count_macs(self, in_shape: tuple[int, ...]) -> int:
        frames = self.output_shape(in_shape)[-1]
        return frames * sum(SF.linear_macs(d.linear.in_features, d.linear.out_features) for d in self.layers)


class MLPScan(AudioModel):
    """MLP applied to the causal window of ``window`` frames ending at every ``stride``-th frame.

    Parameters
    ----------
    window:
        Frames per window (the default 41 = 30 past + current + 10 future, as in Chen et al. 2014).
    hidden:
        Hidden layer widths.
    lookahead:
        Frames of the window after the frame an output describes.
    """

    def __init__(self, in_features: int = 40, num_classes: int = 2, window: int = 41,
                 hidden: Sequence[int] = (128, 128, 128), stride: int = 1, lookahead: int = 10,
                 activation: str = "relu", dropout: float = 0.0):
        super().__init__(in_features, num_classes, lookahead)
        self.body = StreamingSequential(
            WindowMLP(in_features, window, hidden, num_classes, stride, activation, dropout)
        )
        self.options = dict(
            in_features=in_features, num_classes=num_classes, window=window, hidden=list(hidden),
            stride=stride, lookahead=lookahead, activation=activation, dropout=dropout,
        )
        check_lookahead("mlp_scan", lookahead, self.receptive_field())

    def mlp(self, windows: torch.Tensor) -> torch.Tensor:
        """The plain MLP on a batch of windows (N, features, window) -> logits (N, classes)."""
        return self.body[0].mlp(windows)


class ConvScan(AudioModel):
    """The convolutional form of :class:`MLPScan`: a causal kernel-``window`` ConvPool1d, then 1x1 ones."""

    def __init__(self, in_features: int = 40, num_classes: int = 2, window: int = 41,
                 hidden: Sequence[int] = (128, 128, 128), stride: int = 1, lookahead: int = 10,
                 activation: str = "relu", dropout: float = 0.0, conv_impl: str = "direct"):
        super().__init__(in_features, num_classes, lookahead)
        _layer_sizes(in_features, window, hidden, num_classes)  # validates
        channels = [in_features, *hidden, num_classes]
        layers = []
        for i, (a, b) in enumerate(zip(channels, channels[1:])):
            first, last = i == 0, i == len(channels) - 2
            layers.append(ConvPool1d(
                a, b, window if first else 1, stride if first else 1, padding="causal",
                activation=None if last else activation, dropout=0.0 if last else dropout,
                conv_impl=conv_impl if first else "direct",
            ))
        self.body = StreamingSequential(*layers)
        check_lookahead("mlp_scan_conv", lookahead, self.receptive_field())


@torch.no_grad()
def mlp_to_conv(model: MLPScan, conv_impl: str = "direct") -> ConvScan:
    """The :class:`ConvScan` with ``model``'s weights: equal outputs on every window, in one convolution.

    The first layer's ``(H, F * W)`` weight is reshaped to ``(H, F, W)`` (the window is flattened
    feature-major); the others become 1x1 kernels. The result is in ``model``'s train/eval mode.
    """
    if not isinstance(model, MLPScan):
        raise TypeError(f"mlp_to_conv needs an MLPScan, got {type(model).__name__}")
    options = dict(model.options)
    conv = ConvScan(**options, conv_impl=conv_impl)
    source = model.body[0]
    for dense, block in zip(source.layers, conv.body):
        weight = dense.linear.weight
        block.conv.weight.copy_(weight.reshape(block.conv.weight.shape))
        block.conv.bias.copy_(dense.linear.bias)
    conv.config = {"name": "mlp_scan_conv", **options, "conv_impl": conv_impl}
    return conv.to(next(model.parameters()).device).train(model.training)


@register_model("mlp_scan", "audio", (40, 100))
def mlp_scan(**kwargs) -> MLPScan:
    """MLP over a stacked window of frames, applied at every frame (Chen et al. 2014 keyword DNN)."""
    return MLPScan(**kwargs)


@register_model("mlp_scan_conv", "audio", (40, 100))
def mlp_scan_conv(**kwargs) -> ConvScan:
    """The same network as mlp_scan computed as a 1-D convolution (kernel = window) plus 1x1 layers."""
    return ConvScan(**kwargs)
