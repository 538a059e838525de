"""DS-CNN (Zhang et al. 2017, "Hello Edge: keyword spotting on microcontrollers"), size S.

A regular 2-D convolution (``10 time x 4 frequency``, stride 2 x 2) with BN and ReLU, then depthwise-
separable blocks (depthwise 3x3 - BN - ReLU, pointwise 1x1 - BN - ReLU). Frequency padding is "same"
and time padding causal. The paper's global average pooling becomes an average over frequency only,
followed by a per-frame 1x1 output layer (or, with ``freq_collapse="flatten"``, the frequency bins are
flattened into channels before it), so the model scores every output frame.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from speechconv.blocks import ConvPool1d, ConvPool2d, StreamingSequential
from speechconv.blocks.functional import output_size
from speechconv.blocks.reshape import AddChannelAxis, FlattenFrequency, PoolFrequency
from speechconv.blocks.separable import DepthwiseSeparable
from speechconv.blocks.tdnn import check_lookahead
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import register_model


class DSCNN(AudioModel):
    """Per-frame DS-CNN.

    Parameters
    ----------
    channels:
        Feature maps of every layer (64 for DS-CNN-S, 172 for M, 276 for L).
    blocks:
        Number of depthwise-separable blocks (4 for S and M, 5 for L).
    first_kernel, first_stride:
        (frequency, time) kernel and stride of the first convolution.
    kernel:
        (frequency, time) kernel of the depthwise convolutions.
    freq_collapse:
        ``"avg"`` (average over frequency) or ``"flatten"`` (frequency bins into channels).
    lookahead:
        Input frames after the described frame that an output waits for (0: the newest frame).
    """

    def __init__(
        self,
        in_features: int = 40,
        num_classes: int = 2,
        channels: int = 64,
        blocks: int = 4,
        first_kernel: Sequence[int] = (4, 10),
        first_stride: Sequence[int] = (2, 2),
        kernel: Sequence[int] = (3, 3),
        freq_collapse: str = "avg",
        lookahead: int = 0,
        dropout: float = 0.0,
        conv_impl: str = "direct",
    ):
        if freq_collapse not in ("avg", "flatten"):
            raise ConfigError(f"ds_cnn: freq_collapse must be 'avg' or 'flatten', not {freq_collapse!r}")
        if blocks < 0:
            raise ConfigError(f"ds_cnn: blocks must be >= 0, got {blocks}")
        super().__init__(in_features, num_classes, lookahead)
        common = dict(padding=("same", "causal"), batch_norm=True, activation="relu", conv_impl=conv_impl)
        first = ConvPool2d(1, channels, tuple(first_kernel), tuple(first_stride), **common)
        layers = [AddChannelAxis(), first]
        layers += [DepthwiseSeparable(channels, channels, tuple(kernel), **common) for _ in range(blocks)]
        bands = output_size(in_features, first_kernel[0], first_stride[0], padding="same")
        if freq_collapse == "avg":
            layers += [PoolFrequency("avg")]
            head_in = channels
        else:
            layers += [FlattenFrequency()]
            head_in = channels * bands
        layers.append(ConvPool1d(head_in, num_classes, 1, activation=None))
        if dropout:
            layers.insert(-1, nn.Dropout(dropout))
        self.body = StreamingSequential(*layers)
        check_lookahead("ds_cnn", lookahead, self.receptive_field())


@register_model("ds_cnn", "audio", (40, 100))
def ds_cnn(**kwargs) -> DSCNN:
    """DS-CNN-S (Zhang et al. 2017): depthwise-separable CNN, causal in time, per-frame scores."""
    return DSCNN(**kwargs)
