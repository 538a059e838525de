"""Keyword spotting on streams: front-end + model + softmax, fed chunk by chunk with exact results.

:class:`KeywordSpotter` is the whole scoring pipeline as one module. Offline, ``forward(wave)`` gives
per-frame class posteriors of a whole waveform. Streaming, ``forward_streaming(chunk, state)`` gives
the posteriors of the frames that ``chunk`` completes and the new state; the front-end cache lives
under ``"frontend."`` and the model cache under ``"model."``. Since every layer is causal and keeps
what it has not consumed, the concatenated streaming posteriors equal the offline ones whatever the
chunk sizes are.

:class:`StreamingEngine` holds one stream: its state and the index of its next output frame, so
``feed(chunk)`` returns the keyword posteriors with the time each one describes.

Timing
------
Feature frame ``k`` covers samples ``[k * hop, k * hop + n_fft)``. Model output ``t`` sees feature
frames up to ``end(t) = offset + t * stride + size - 1`` of its receptive field (``t * stride`` when
every layer pads causally) and waits ``lookahead`` frames past the frame it describes, so it describes
the audio ending at ``(end(t) * hop + n_fft - lookahead * hop) / sample_rate`` seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from speechconv.blocks.streaming import Cache, add_prefix, sub_cache
from speechconv.errors import ConfigError

#: Labels that never name the keyword (background classes of keyword-spotting corpora).
BACKGROUND_LABELS = frozenset(
    {"_silence_", "_unknown_", "_background_", "_background_noise_", "silence", "unknown", "filler",
     "background", "noise", "other", "none", "negative"}
)
#: State entry of :class:`StreamingEngine` counting the output frames emitted so far.
FRAME_COUNTER = "engine.output_frames"


def default_keyword(labels: Sequence[str]) -> str:
    """The first label that is not a background class (see :data:`BACKGROUND_LABELS`)."""
    for label in labels:
        if label.lower() not in BACKGROUND_LABELS:
            return label
    raise ConfigError(f"labels {list(labels)} hold only background classes; name the keyword explicitly")


class KeywordSpotter(nn.Module):
    """Front-end, frame classifier and softmax: waveform -> per-frame class posteriors.

    Parameters
    ----------
    frontend:
        A spectrogram front-end (``forward`` and ``forward_streaming``, see :mod:`speechconv.frontends`).
    model:
        An :class:`~speechconv.models.base.AudioModel` whose ``in_features`` match the front-end.
    labels:
        Class names, in the order of the model's outputs.
    detector:
        Default detector options of this model (see :class:`speechconv.detect.Detector`).
    keyword:
        The label to detect; by default the first non-background label.
    """

    def __init__(
        self,
        frontend: nn.Module,
        model: nn.Module,
        labels: Sequence[str],
        detector: dict[str, Any] | None = None,
        keyword: str | None = None,
    ):
        super().__init__()
        labels = [str(label) for label in labels]
        num_classes = getattr(model, "num_classes", None)
        if num_classes is not None and num_classes != len(labels):
            raise ConfigError(f"model has {num_classes} classes but {len(labels)} labels were given: {labels}")
        in_features = getattr(model, "in_features", None)
        if in_features is not None and in_features != frontend.n_features:
            raise ConfigError(
                f"model expects {in_features} features per frame but the front-end gives {frontend.n_features}"
            )
        keyword = default_keyword(labels) if keyword is None else keyword
        if keyword not in labels:
            raise ConfigError(f"keyword {keyword!r} is not one of the labels {labels}")
        self.frontend = frontend
        self.model = model
        self.labels = labels
        self.keyword = keyword
        self.detector = dict(detector or {})

    # --- description -----------------------------------------------------------------------
    @property
    def keyword_index(self) -> int:
        return self.labels.index(self.keyword)

    @property
    def sample_rate(self) -> int:
        return int(self.frontend.sample_rate)

    @property
    def samples_per_output(self) -> int:
        """Samples between two output frames (hop times the model's frame stride)."""
        return int(self.frontend.hop_length) * self.model.receptive_field().stride

    @property
    def output_period(self) -> float:
        """Seconds between two output frames."""
        return self.samples_per_output / self.sample_rate

    @property
    def streamable(self) -> bool:
        normalization = getattr(self.frontend, "normalization", None)
        return bool(getattr(self.model, "streamable", True)) and normalization != "utterance"

    @property
    def config(self) -> dict[str, Any]:
        """Everything but the weights: rebuilds this spotter with :func:`speechconv.pretrained.build_spotter`."""
        if getattr(self.model, "config", None) is None:
            raise ConfigError("the model has no config (build it with speechconv.models.build_model to save it)")
        return {
            "frontend": dict(self.frontend.config),
            "model": dict(self.model.config),
            "labels": list(self.labels),
            "keyword": self.keyword,
            "detector": dict(self.detector),
        }

    def output_frames(self, num_samples: int) -> int:
        """Output frames for a waveform of ``num_samples`` samples (offline or streamed)."""
        return self.model.output_frames(self.frontend.num_frames(num_samples))

    def output_times(self, start_frame: int, n: int) -> np.ndarray:
        """Seconds described by output frames ``start_frame .. start_frame + n - 1`` (see module doc)."""
        field = self.model.receptive_field()
        hop = int(self.frontend.hop_length)
        t = np.arange(start_frame, start_frame + n, dtype=np.float64)
        end_frame = field.offset + t * field.stride + field.size - 1
        lookahead = int(getattr(self.model, "lookahead", 0))
        return (end_frame * hop + self.frontend.n_fft - lookahead * hop) / self.sample_rate

    # --- computation -------------------------------------------------------------------------
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Posteriors ``(B, C, frames)`` of whole waveforms ``(B, T)`` (or ``(T,)``)."""
        features = self.frontend(wave)
        logits, _ = self.model(features)
        return torch.softmax(logits, dim=1)

    def forward_streaming(
        self, chunk: torch.Tensor, state: Cache | None = None
    ) -> tuple[torch.Tensor, Cache]:
        """Posteriors ``(B, C, n)`` of the output frames that ``chunk`` ``(B, T')`` completes.

        ``state`` is the previous step's state (``None`` or ``{}`` starts a stream); the input state
        is not modified.
        """
        if not self.streamable:
            raise ConfigError(
                "this spotter cannot stream: its model or front-end needs the whole input "
                "('same' padding, dense layers over time, or utterance normalization)"
            )
        features, frontend_cache = self.frontend.forward_streaming(chunk, sub_cache(state, "frontend."))
        logits, model_cache = self.model(features, sub_cache(state, "model."))
        new_state = add_prefix(frontend_cache, "frontend.")
        new_state.update(add_prefix(model_cache, "model."))
        return torch.softmax(logits, dim=1), new_state

    @torch.no_grad()
    def init_state_with_warmup(
        self, batch: int = 1, chunk_samples: int | None = None, max_steps: int = 64
    ) -> tuple[Cache, int]:
        """A fixed-shape state for chunks of ``chunk_samples``, and the silence it was primed with.

        A stream's first steps grow the caches (nothing is padded with invented samples), so a
        fixed-shape step function (ONNX) starts from the state of a stream that has heard
        ``warmup`` samples of digital silence, fed in chunks of ``chunk_samples`` until no state
        tensor changes shape any more. Feeding ``wave`` from this state gives the posteriors that
        the offline model gives for ``cat(zeros(warmup), wave)`` after the warm-up's frames.
        ``chunk_samples`` defaults to one output period; it must be a multiple of the hop.
        """
        step = self.samples_per_output if chunk_samples is None else int(chunk_samples)
        hop = int(self.frontend.hop_length)
        if step <= 0 or step % hop:
            raise ConfigError(f"chunk_samples must be a positive multiple of the hop ({hop}), got {step}")
        device = next(iter(self.buffers()), torch.empty(0)).device
        silence = torch.zeros(batch, step, device=device)
        state: Cache = {}
        shapes: dict[str, tuple[int, ...]] | None = None
        for steps in range(1, max_steps + 1):
            _, state = self.forward_streaming(silence, state)
            new_shapes = {k: tuple(v.shape) for k, v in state.items()}
            if new_shapes == shapes:
                return state, steps * step
            shapes = new_shapes
        raise ConfigError(
            f"the streaming state does not settle to fixed shapes with chunks of {step} samples; "
            f"use a multiple of {self.samples_per_output} samples (hop x model frame stride)"
        )

    def init_state(self, batch: int = 1, chunk_samples: int | None = None) -> Cache:
        """Initial fixed-shape state (names and shapes) for chunks of ``chunk_samples``.

        See :meth:`init_state_with_warmup` for what the state holds.
        """
        return self.init_state_with_warmup(batch, chunk_samples)[0]


class StreamingEngine:
    """One audio stream through a :class:`KeywordSpotter`: keeps its state and its frame clock.

    The spotter is put in eval mode; computation runs without autograd.
    """

    def __init__(self, spotter: KeywordSpotter):
        if not spotter.streamable:
            raise ConfigError("this spotter cannot stream (see KeywordSpotter.streamable)")
        self.spotter = spotter.eval()
        self.keyword_index = spotter.keyword_index
        self.device = next(iter(spotter.buffers()), torch.empty(0)).device
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self.state: Cache = {}
        self.frames_done = 0

    @torch.inference_mode()
    def feed_posteriors(self, chunk: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(times (n,), posteriors (C, n))`` of the output frames that ``chunk`` (1-D) completes."""
        if chunk.ndim != 1:
            raise ValueError(f"a stream chunk must be 1-D samples, got shape {tuple(chunk.shape)}")
        chunk = chunk.to(self.device, torch.float32, non_blocking=True)
        posteriors, self.state = self.spotter.forward_streaming(chunk.unsqueeze(0), self.state)
        n = posteriors.shape[-1]
        times = self.spotter.output_times(self.frames_done, n)
        self.frames_done += n
        return times, posteriors[0].cpu().numpy()

    def feed(self, chunk: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(times (n,), keyword posteriors (n,))`` of the output frames that ``chunk`` completes."""
        times, posteriors = self.feed_posteriors(chunk)
        return times, posteriors[self.keyword_index]

    def state_dict_tensors(self) -> dict[str, torch.Tensor]:
        """The stream's state as named tensors (caches plus the output-frame counter)."""
        tensors = {k: v.clone() for k, v in self.state.items()}
        tensors[FRAME_COUNTER] = torch.tensor([self.frames_done], dtype=torch.int64)
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Resume the stream saved by :meth:`state_dict_tensors`."""
        tensors = dict(tensors)
        counter = tensors.pop(FRAME_COUNTER, None)
        self.frames_done = int(counter.item()) if counter is not None else 0
        self.state = {k: v.clone() for k, v in tensors.items()}
