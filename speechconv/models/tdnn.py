"""Time-delay neural networks: Waibel et al. 1989 (``tdnn``) and the sub-sampled TDNN of
Peddinti et al. 2015 (``tdnn_sub``).

Each layer is a :class:`~speechconv.blocks.tdnn.TDNNLayer` with its context offsets, run causally, so
the network's look-ahead is explicit: the right contexts summed at each layer's frame rate. The last
layer is a 1x1 (context ``[0]``) output layer giving per-frame class logits.
"""

from __future__ import annotations

from typing import Sequence

from speechconv.blocks import StreamingSequential
from speechconv.blocks.tdnn import TDNNLayer, check_lookahead, context_kernel, stack_lookahead
from speechconv.errors import ConfigError
from speechconv.models.base import AudioModel
from speechconv.models.registry import register_model

WAIBEL_CONTEXTS = ([-2, -1, 0, 1, 2], [-2, 0, 2], [-3, 0, 3], [0])
#: Peddinti et al. 2015, Table 1 setup with total context [-13, 9]: {-2,2} {-1,2} {-3,3} {-7,2} {0}.
PEDDINTI_CONTEXTS = ([-2, -1, 0, 1, 2], [-1, 2], [-3, 3], [-7, 2], [0])


class TDNN(AudioModel):
    """Stack of time-delay layers and a 1x1 output layer.

    Parameters
    ----------
    contexts:
        Per hidden layer, the frame offsets it reads in its own input frames (evenly spaced).
    widths:
        Per hidden layer, the number of units.
    strides:
        Per hidden layer, the output frame step (sub-sampling); default all 1.
    """

    def __init__(
        self,
        in_features: int = 40,
        num_classes: int = 2,
        contexts: Sequence[Sequence[int]] = WAIBEL_CONTEXTS,
        widths: Sequence[int] = (128, 128, 128, 128),
        strides: Sequence[int] | None = None,
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.0,
        conv_impl: str = "direct",
        name: str = "tdnn",
    ):
        strides = [1] * len(contexts) if strides is None else list(strides)
        if not contexts or len(widths) != len(contexts) or len(strides) != len(contexts):
            raise ConfigError(
                f"{name}: contexts, widths and strides need one entry per hidden layer, got "
                f"{len(contexts)}, {len(widths)} and {len(strides)}"
            )
        for context in contexts:
            context_kernel(context)
        lookahead = stack_lookahead([max(c) for c in contexts], strides)
        super().__init__(in_features, num_classes, lookahead)
        layers = []
        channels = in_features
        for context, width, stride in zip(contexts, widths, strides):
            layer = TDNNLayer(channels, width, context, stride, activation, batch_norm, dropout, conv_impl)
            layers.append(layer)
            channels = width
        layers.append(TDNNLayer(channels, num_classes, [0], activation=None, conv_impl=conv_impl))
        self.body = StreamingSequential(*layers)
        self.contexts = [list(c) for c in contexts]
        self.strides = strides
        check_lookahead(name, lookahead, self.receptive_field())


@register_model("tdnn", "audio", (40, 100))
def tdnn(**kwargs) -> TDNN:
    """Time-delay network (Waibel et al. 1989): layers of shared-weight context windows over time."""
    return TDNN(**kwargs)


@register_model("tdnn_sub", "audio", (40, 100))
def tdnn_sub(**kwargs) -> TDNN:
    """Sub-sampled TDNN (Peddinti et al. 2015): sparse 2-tap contexts {-2,2} {-1,2} {-3,3} {-7,2}."""
    kwargs.setdefault("contexts", PEDDINTI_CONTEXTS)
    kwargs.setdefault("widths", (128,) * len(kwargs["contexts"]))
    kwargs.setdefault("name", "tdnn_sub")
    return TDNN(**kwargs)
