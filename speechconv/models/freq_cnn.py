"""Convolution along frequency (Abdel-Hamid et al. 2014): filters narrow in time slide over the
frequency axis and max-pool over frequency only, for invariance to small spectral shifts (speakers);
the pooled maps are flattened into channels and time-delay layers model the time context.
"""

from __future__ import annotations

from typing import Sequence

from speechconv.blocks import ConvPool2d, StreamingSequential
from speechconv.blocks.reshape import AddChannelAxis, FlattenFrequency
from speechconv.blocks.tdnn import TDNNLayer, check_lookahead, context_kernel, stack_lookahead
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import register_model


class FreqCNN(AudioModel):
    """Frequency convolution + frequency pooling, then time-delay layers and a 1x1 output layer.

    Parameters
    ----------
    channels:
        Feature maps of the frequency convolution.
    freq_kernel:
        Filter size along frequency (bands).
    time_context:
        Frame offsets of the frequency convolution's filters (narrow: 1 to 3 frames).
    freq_pool:
        Pooling size (and step) along frequency; time is not pooled.
    time_contexts, widths:
        Contexts and widths of the time-delay layers over the flattened (channels x frequency) maps.
    """

    def __init__(
        self,
        in_features: int = 40,
        num_classes: int = 2,
        channels: int = 32,
        freq_kernel: int = 8,
        time_context: Sequence[int] = (-1, 0, 1),
        freq_pool: int = 3,
        pool: str = "max",
        time_contexts: Sequence[Sequence[int]] = ([-2, -1, 0, 1, 2], [-2, 0, 2]),
        widths: Sequence[int] = (128, 128),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.0,
        conv_impl: str = "direct",
    ):
        if len(widths) != len(time_contexts):
            raise ConfigError(f"freq_cnn: {len(time_contexts)} time_contexts but {len(widths)} widths")
        time_kernel, time_dilation = context_kernel(time_context)
        conv_bands = in_features - freq_kernel + 1
        pooled_bands = (conv_bands - freq_pool) // freq_pool + 1 if conv_bands >= freq_pool else 0
        if pooled_bands < 1:
            raise ConfigError(
                f"freq_cnn: {in_features} features are too few for "
                f"freq_kernel={freq_kernel} and freq_pool={freq_pool}"
            )
        rights = [max(time_context)] + [max(c) for c in time_contexts]
        super().__init__(in_features, num_classes, stack_lookahead(rights, [1] * len(rights)))
        freq_conv = ConvPool2d(
            1, channels, (freq_kernel, time_kernel), dilation=(1, time_dilation), padding=("valid", "causal"),
            batch_norm=batch_norm, activation=activation, pool=pool, pool_size=(freq_pool, 1),
            conv_impl=conv_impl,
        )
        layers = [AddChannelAxis(), freq_conv, FlattenFrequency()]
        width_in = channels * pooled_bands
        for context, width in zip(time_contexts, widths):
            layers.append(TDNNLayer(width_in, width, context, 1, activation, batch_norm, dropout, conv_impl))
            width_in = width
        layers.append(TDNNLayer(width_in, num_classes, [0], activation=None, conv_impl=conv_impl))
        self.body = StreamingSequential(*layers)
        check_lookahead("freq_cnn", self.lookahead, self.receptive_field())


@register_model("freq_cnn", "audio", (40, 100))
def freq_cnn(**kwargs) -> FreqCNN:
    """CNN along frequency with frequency-only pooling, then TDNN layers (Abdel-Hamid et al. 2014)."""
    return FreqCNN(**kwargs)
