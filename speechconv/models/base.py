"""Interface shared by the audio models: frame-level scores, declared context, streaming state."""

from __future__ import annotations

import torch

from speechconv.blocks.functional import ReceptiveField
from speechconv.blocks.streaming import State, StreamingModule, StreamingSequential, add_prefix, sub_state


class AudioModel(StreamingModule):
    """Maps features (batch, features, time) to per-frame class scores (batch, classes, frames).

    Subclasses build ``self.body`` (a :class:`StreamingSequential` of blocks, the last of which returns
    class logits) and declare ``lookahead``: how many input frames after the frame an output is about
    it waits for. Time padding is causal, so output ``t`` ends at input frame ``t * frame_stride``; it
    describes input frame ``t * frame_stride - lookahead``. ``left_context`` is the rest of the
    receptive field.
    """

    is_unit = False
    body: StreamingSequential

    def __init__(self, in_features: int, num_classes: int, lookahead: int = 0):
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self._lookahead = lookahead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def stream(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        y, new_state = self.body.stream(x, sub_state(state, "body."))
        return y, add_prefix(new_state, "body.")

    # --- declared properties read by the streaming engine and inspect -------------------------
    def geometry(self):
        return self.body.geometry()

    @property
    def frame_stride(self) -> int:
        """Input frames per output frame."""
        return self.receptive_field().stride

    @property
    def lookahead(self) -> int:
        return self._lookahead

    @property
    def left_context(self) -> int:
        return self.receptive_field().size - 1 - self.lookahead

    def output_frames(self, n_frames: int) -> int:
        """Output frames for ``n_frames`` input frames, offline or streamed."""
        return self.body.output_shape((self.in_features, n_frames))[-1]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_second(self, frame_rate: float) -> int:
        """Multiply-accumulates per second of audio at ``frame_rate`` feature frames per second."""
        frames = int(round(frame_rate)) * 10
        return self.body.count_macs((self.in_features, frames)) // 10

    def context(self) -> dict:
        field: ReceptiveField = self.receptive_field()
        return {
            "frame_stride": field.stride,
            "receptive_field": field.size,
            "left_context": self.left_context,
            "lookahead": self.lookahead,
        }
