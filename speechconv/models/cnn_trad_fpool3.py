"""cnn-trad-fpool3 (Sainath & Parada 2015, "Convolutional neural networks for small-footprint keyword
spotting"): two time x frequency convolutions, pooling 3 in frequency only, a low-rank linear layer,
one DNN layer and the output layer.

The paper classifies a window of 32 frames (23 left, 8 right of the current frame). Here the linear
layer spans the time positions the two convolutions leave of that window, as a convolution, so the
whole network is scanned causally over time and output ``t`` is exactly the paper's output for the
window ending at input frame ``t``, which describes frame ``t - lookahead``. With 40 features and
two classes it has 244,258 parameters (the paper reports 244K).
"""

from __future__ import annotations

from typing import Sequence

from speechconv.blocks import ConvPool1d, ConvPool2d, StreamingSequential
from speechconv.blocks.reshape import AddChannelAxis, FlattenFrequency
from speechconv.blocks.tdnn import check_lookahead
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import register_model


class CNNTradFPool3(AudioModel):
    """Per-frame cnn-trad-fpool3.

    Parameters
    ----------
    channels:
        Filters of the two convolutions.
    kernels:
        (frequency, time) filter sizes of the two convolutions.
    freq_pool:
        Max-pooling size along frequency after the first convolution (none in time).
    window:
        Input frames one output sees (the paper's 32).
    lookahead:
        Of those, frames after the described frame (the paper's 8).
    low_rank, hidden:
        Width of the linear (no activation) layer and of the DNN layer.
    """

    def __init__(
        self,
        in_features: int = 40,
        num_classes: int = 2,
        channels: Sequence[int] = (64, 64),
        kernels: Sequence[Sequence[int]] = ((8, 20), (4, 10)),
        freq_pool: int = 3,
        window: int = 32,
        lookahead: int = 8,
        low_rank: int = 32,
        hidden: int = 128,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        conv_impl: str = "direct",
    ):
        if len(channels) != 2 or len(kernels) != 2 or any(len(k) != 2 for k in kernels):
            raise ConfigError(
                "cnn_trad_fpool3: needs 2 channels and 2 (freq, time) kernels, "
                f"got {list(channels)}, {list(kernels)}"
            )
        super().__init__(in_features, num_classes, lookahead)
        (f1, t1), (f2, t2) = (tuple(k) for k in kernels)
        linear_frames = window - (t1 - 1) - (t2 - 1)
        bands = (in_features - f1 + 1 - freq_pool) // freq_pool + 1 - f2 + 1
        if linear_frames < 1:
            raise ConfigError(
                f"cnn_trad_fpool3: window={window} is shorter than the convolutions' span {t1 + t2 - 1}"
            )
        if bands < 1:
            raise ConfigError(
                f"cnn_trad_fpool3: {in_features} features are too few for kernels {list(kernels)}"
            )
        conv = dict(
            padding=("valid", "causal"), activation=activation, batch_norm=batch_norm, conv_impl=conv_impl
        )
        self.body = StreamingSequential(
            AddChannelAxis(),
            ConvPool2d(1, channels[0], (f1, t1), pool="max", pool_size=(freq_pool, 1), **conv),
            ConvPool2d(channels[0], channels[1], (f2, t2), dropout=dropout, **conv),
            # the paper's linear layer over all remaining (frequency, time) positions of the window
            ConvPool2d(
                channels[1], low_rank, (bands, linear_frames), padding=("valid", "causal"), activation=None,
                conv_impl=conv_impl,
            ),
            FlattenFrequency(),
            ConvPool1d(low_rank, hidden, 1, activation=activation, dropout=dropout),
            ConvPool1d(hidden, num_classes, 1, activation=None),
        )
        check_lookahead("cnn_trad_fpool3", lookahead, self.receptive_field())


@register_model("cnn_trad_fpool3", "audio", (40, 100))
def cnn_trad_fpool3(**kwargs) -> CNNTradFPool3:
    """Time x frequency CNN with frequency pooling 3 (Sainath & Parada 2015), scanned per frame."""
    return CNNTradFPool3(**kwargs)
