"""TC-ResNet (Choi et al. 2019, "Temporal convolution for real-time keyword spotting on mobile devices").

Frequency bins are the input channels of 1-D convolutions over time. After a 3-tap first convolution,
each residual block is ``conv9(stride 2) - BN - ReLU - conv9 - BN`` plus a shortcut (``conv1x1(stride 2)
- BN - ReLU`` where the shape changes, else identity), then ReLU. All convolutions are causal, so
body and shortcut outputs end at the same input frame and the blocks stream. The paper's global
average pooling is replaced by a per-frame 1x1 output layer: the frame rate drops by the product
of the block strides (8 for TC-ResNet8). With 40 features and 12 classes TC-ResNet8 has 65,148
parameters (the paper reports 66K).
"""

from __future__ import annotations

from typing import Sequence

from speechconv.blocks import ConvPool1d, Residual, StreamingSequential
from speechconv.blocks.tdnn import check_lookahead
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import register_model

TC_RESNET8 = ((24, 2), (32, 2), (48, 2))
TC_RESNET14 = ((24, 2), (24, 1), (32, 2), (32, 1), (48, 2), (48, 1))


def residual_block(
    in_channels: int, out_channels: int, kernel: int, stride: int, dropout: float, conv_impl: str
) -> Residual:
    """One TC-ResNet block (causal)."""
    conv = dict(padding="causal", bias=False, batch_norm=True, conv_impl=conv_impl)
    body = StreamingSequential(
        ConvPool1d(in_channels, out_channels, kernel, stride, activation="relu", **conv),
        ConvPool1d(out_channels, out_channels, kernel, 1, activation=None, dropout=dropout, **conv),
    )
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = ConvPool1d(in_channels, out_channels, 1, stride, activation="relu", **conv)
    return Residual(body, shortcut, activation="relu")


class TCResNet(AudioModel):
    """TC-ResNet with per-frame outputs.

    Parameters
    ----------
    blocks:
        (channels, stride) of each residual block, before the width multiplier.
    first_channels, first_kernel:
        The first (plain) convolution.
    width_multiplier:
        Scales every channel count (the paper's ``k``: 1 or 1.5).
    lookahead:
        Input frames after the described frame that an output waits for (0: the newest frame).
    """

    def __init__(
        self,
        in_features: int = 40,
        num_classes: int = 2,
        blocks: Sequence[Sequence[int]] = TC_RESNET8,
        first_channels: int = 16,
        first_kernel: int = 3,
        kernel: int = 9,
        width_multiplier: float = 1.0,
        lookahead: int = 0,
        dropout: float = 0.0,
        conv_impl: str = "direct",
        name: str = "tc_resnet",
    ):
        if width_multiplier <= 0:
            raise ConfigError(f"{name}: width_multiplier must be > 0, got {width_multiplier!r}")
        if not blocks or any(len(b) != 2 or b[1] < 1 for b in blocks):
            raise ConfigError(f"{name}: blocks must be (channels, stride) pairs, got {list(blocks)}")
        super().__init__(in_features, num_classes, lookahead)

        def width(c: int) -> int:
            return max(1, int(c * width_multiplier))

        channels = width(first_channels)
        first = ConvPool1d(
            in_features, channels, first_kernel, padding="causal", bias=False, activation=None,
            conv_impl=conv_impl,
        )
        layers = [first]
        for out_channels, stride in blocks:
            layers.append(residual_block(channels, width(out_channels), kernel, stride, dropout, conv_impl))
            channels = width(out_channels)
        layers.append(ConvPool1d(channels, num_classes, 1, activation=None))
        self.body = StreamingSequential(*layers)
        check_lookahead(name, lookahead, self.receptive_field())


@register_model("tc_resnet", "audio", (40, 100))
def tc_resnet(**kwargs) -> TCResNet:
    """TC-ResNet8 (Choi et al. 2019): causal temporal convolutions, frequency bins as channels."""
    return TCResNet(**kwargs)


@register_model("tc_resnet14", "audio", (40, 100))
def tc_resnet14(**kwargs) -> TCResNet:
    """TC-ResNet14 (Choi et al. 2019): six residual blocks, strides 2 and 1 alternating."""
    kwargs.setdefault("blocks", TC_RESNET14)
    kwargs.setdefault("name", "tc_resnet14")
    return TCResNet(**kwargs)
