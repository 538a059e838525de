"""Keyword spotting on streams: front-end + model + softmax, fed chunk by chunk with exact results.

:class:`KeywordSpotter` is the whole scoring pipeline as one module. Offline, ``forward(wave)`` gives
per-frame class posteriors of a whole waveform. Streaming, ``stream(chunk, state)`` gives
the posteriors of the frames that ``chunk`` completes and the new state; the front-end state lives
under ``"frontend."`` and the model state under ``"model."``. Since every layer is causal and keeps
what it has not consumed, the concatenated streaming posteriors equal the offline ones whatever the
chunk sizes are.

:class:`StreamingEngine` holds one stream: its state and the index of its next output frame, so
``feed(chunk)`` returns the keyword posteriors with the time each one describes.

The state before the first sample
---------------------------------
Every stream starts as if it had been preceded by digital silence: from :meth:`KeywordSpotter.initial_state`,
the state after :attr:`KeywordSpotter.warmup_samples` samples of zeros (enough to fill every state; more
silence changes nothing). Offline inference (``forward``), the streaming engine, training
(:class:`speechconv.training.AudioClassifier`) and the exported step all start there, so they give the same
scores from sample 0, and frame ``0`` is the first one that the real audio completes.

Timing
------
Feature frame ``k`` covers samples ``[k * hop, k * hop + n_fft)``. Model output ``t`` sees feature
frames up to ``end(t) = offset + t * stride + size - 1`` of its receptive field (``t * stride`` when
every layer pads causally) and waits ``lookahead`` frames past the frame it describes, so it describes
the audio ending at ``(end(t) * hop + n_fft - lookahead * hop) / sample_rate`` seconds, counted from
the start of the warm-up silence; :meth:`KeywordSpotter.output_times` gives it from the stream's first
sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from speechconv.blocks.streaming import State, add_prefix, sub_state
from speechconv.errors import ConfigError
from speechconv.streaming.timing import stream_times

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
        A spectrogram front-end (``forward`` and ``stream``, see :mod:`speechconv.frontends`).
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

    def _frames_from_zero(self, num_samples: int) -> int:
        """Output frames of ``num_samples`` fed to an empty state (no warm-up)."""
        return self.model.output_frames(self.frontend.num_frames(num_samples))

    def output_frames(self, num_samples: int) -> int:
        """Output frames of a stream of ``num_samples`` samples (offline or streamed, from the initial state)."""
        warmup = self.warmup_samples
        return self._frames_from_zero(warmup + num_samples) - self._frames_from_zero(warmup)

    def output_times(self, start_frame: int, n: int) -> np.ndarray:
        """Seconds from the stream's first sample described by output frames ``start_frame .. + n - 1``."""
        return stream_times(self.frame_timing, np.arange(start_frame, start_frame + n))

    @property
    def frame_timing(self) -> dict[str, int]:
        """The integers of the timing rule (:func:`speechconv.streaming.timing.stream_times`)."""
        field = self.model.receptive_field()
        return {
            "offset": int(field.offset), "stride": int(field.stride), "size": int(field.size),
            "hop": int(self.frontend.hop_length), "n_fft": int(self.frontend.n_fft),
            "lookahead": int(getattr(self.model, "lookahead", 0)), "sample_rate": int(self.sample_rate),
            "warmup_samples": int(self.warmup_samples), "warm_frames": self._frames_from_zero(self.warmup_samples),
        }

    # --- the state before the first sample ----------------------------------------------------
    @property
    def warmup_samples(self) -> int:
        """Samples of silence after which the state no longer changes (a multiple of one output period).

        Caches start zero-padded; this much silence replaces every padded value by the response to
        silence: the receptive field, rounded up, checked by feeding one more period.
        """
        if getattr(self, "_warmup_samples", None) is None:
            self._warmup_samples = self._settle()[1] if self.streamable else 0
        return self._warmup_samples

    @torch.no_grad()
    def _silence_state(self, samples: int) -> State:
        device = next(iter(self.buffers()), torch.empty(0)).device
        return self._stream(torch.zeros(1, samples, device=device), {})[1]

    @torch.no_grad()
    def _settle(self, max_seconds: float = 60.0) -> tuple[State, int]:
        period = self.samples_per_output
        field = self.model.receptive_field().size * int(self.frontend.hop_length) + int(self.frontend.n_fft)
        samples = -(-field // period) * period
        while samples <= max_seconds * self.sample_rate:
            state = self._silence_state(samples)
            longer = self._stream(torch.zeros(1, period, device=_device(self)), state)[1]
            if _same_state(state, longer):
                return state, samples
            samples *= 2
        raise ConfigError(f"the streaming state does not settle after {max_seconds:g} s of silence")

    def initial_state(self, batch: int = 1) -> State:
        """The state before a stream's first sample: after :attr:`warmup_samples` of digital silence.

        Computed with the current weights in eval mode (batch norm uses its running statistics) and
        without gradients, and reused while the weights stay the same; every one of ``batch`` streams
        gets the same state.
        """
        if not self.streamable:
            raise ConfigError("this spotter cannot stream (see KeywordSpotter.streamable)")
        key = (_device(self), tuple((t.data_ptr(), -1 if t.is_inference() else t._version)
                                    for t in (*self.parameters(), *self.buffers())))
        cached = getattr(self, "_initial_state", None)
        if cached is None or cached[0] != key:
            was_training = self.training
            self.eval()
            try:
                state = self._silence_state(self.warmup_samples)
            finally:
                self.train(was_training)
            self._initial_state = cached = (key, state)
        # batched entries are (1, ...) with two or more axes; skip counters (1,) are not per stream
        return {k: v.expand(batch, *v.shape[1:]).clone() if v.ndim >= 2 else v.clone()
                for k, v in cached[1].items()}

    # --- computation -------------------------------------------------------------------------
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Posteriors ``(B, C, frames)`` of whole waveforms ``(B, T)`` (or ``(T,)``), from the initial state."""
        return torch.softmax(self.logits(wave), dim=1)

    def logits(self, wave: torch.Tensor, feature_augment=None) -> torch.Tensor:
        """Frame logits ``(B, C, frames)`` of whole waveforms from the initial state (training's view).

        ``feature_augment`` (e.g. SpecAugment) is applied to the features of ``wave`` only.
        """
        wave = wave if wave.ndim == 2 else wave.reshape(1, -1)
        if not self.streamable:  # a model that needs the whole input has no stream to start
            features = self.frontend(wave)
            state: State = {}
        else:
            state = self.initial_state(wave.shape[0])
            features, _ = self.frontend.stream(wave, sub_state(state, "frontend."))
        if feature_augment is not None:
            features = feature_augment(features)
        if not state:
            return self.model(features)
        return self.model.stream(features, sub_state(state, "model."))[0]

    def stream(
        self, chunk: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Posteriors ``(B, C, n)`` of the output frames that ``chunk`` ``(B, T')`` completes.

        ``state`` is the previous step's state; ``None`` or ``{}`` starts a stream from
        :meth:`initial_state`. The input state is not modified.
        """
        if not self.streamable:
            raise ConfigError(
                "this spotter cannot stream: its model or front-end needs the whole input "
                "('same' padding, dense layers over time, or utterance normalization)"
            )
        if not state:
            state = self.initial_state(chunk.shape[0] if chunk.ndim == 2 else 1)
        return self._stream(chunk, state)

    def _stream(self, chunk: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return stream_step(self.frontend.stream, self.model.stream, chunk, state)

    @torch.no_grad()
    def init_state_with_warmup(
        self, batch: int = 1, chunk_samples: int | None = None, max_steps: int = 64
    ) -> tuple[State, int]:
        """:meth:`initial_state` and :attr:`warmup_samples`, checked to keep fixed shapes with chunks of
        ``chunk_samples`` (default: one output period; it must be a multiple of the hop), as a
        fixed-shape step function (ONNX) needs."""
        step = self.samples_per_output if chunk_samples is None else int(chunk_samples)
        hop = int(self.frontend.hop_length)
        if step <= 0 or step % hop:
            raise ConfigError(f"chunk_samples must be a positive multiple of the hop ({hop}), got {step}")
        state = self.initial_state(batch)
        device = next(iter(self.buffers()), torch.empty(0)).device
        _, after = self._stream(torch.zeros(batch, step, device=device), state)
        if {k: v.shape for k, v in after.items()} != {k: v.shape for k, v in state.items()}:
            raise ConfigError(
                f"the streaming state does not keep fixed shapes with chunks of {step} samples; "
                f"use a multiple of {self.samples_per_output} samples (hop x model frame stride)"
            )
        return state, self.warmup_samples

    def init_state(self, batch: int = 1, chunk_samples: int | None = None) -> State:
        """Initial fixed-shape state for chunks of ``chunk_samples`` (see :meth:`init_state_with_warmup`)."""
        return self.init_state_with_warmup(batch, chunk_samples)[0]


def _device(module: nn.Module) -> torch.device:
    return next(iter(module.buffers()), next(iter(module.parameters()), torch.empty(0))).device


def stream_step(frontend_stream, model_stream, chunk: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """One streaming step of a spotter: the front-end's state under ``"frontend."``, the model's under
    ``"model."``, posteriors by softmax. :meth:`KeywordSpotter.stream` and the exported step (which
    passes scoped modules, so graph nodes are named by part) both run it."""
    features, frontend_state = frontend_stream(chunk, sub_state(state, "frontend."))
    logits, model_state = model_stream(features, sub_state(state, "model."))
    new_state = add_prefix(frontend_state, "frontend.")
    new_state.update(add_prefix(model_state, "model."))
    return torch.softmax(logits, dim=1), new_state


def _same_state(a: State, b: State, tolerance: float = 1e-6) -> bool:
    """Same names, shapes and values (within ``tolerance`` relative to each tensor's magnitude)."""
    if a.keys() != b.keys():
        return False
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.numel() and x.is_floating_point():
            if float((x - y).abs().max()) > tolerance * (1.0 + float(x.abs().max())):
                return False
        elif not torch.equal(x, y):
            return False
    return True


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
        """Start a new stream (from :meth:`KeywordSpotter.initial_state`)."""
        self.state: State = self.spotter.initial_state(1)
        self.frames_done = 0

    @torch.inference_mode()
    def feed_posteriors(self, chunk: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(times (n,), posteriors (C, n))`` of the output frames that ``chunk`` (1-D) completes."""
        if chunk.ndim != 1:
            raise ValueError(f"a stream chunk must be 1-D samples, got shape {tuple(chunk.shape)}")
        chunk = chunk.to(self.device, torch.float32, non_blocking=True)
        posteriors, self.state = self.spotter.stream(chunk.unsqueeze(0), self.state)
        n = posteriors.shape[-1]
        times = self.spotter.output_times(self.frames_done, n)
        self.frames_done += n
        return times, posteriors[0].cpu().numpy()

    def feed(self, chunk: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(times (n,), keyword posteriors (n,))`` of the output frames that ``chunk`` completes."""
        times, posteriors = self.feed_posteriors(chunk)
        return times, posteriors[self.keyword_index]

    def state_dict_tensors(self) -> dict[str, torch.Tensor]:
        """The stream's state as named tensors (states plus the output-frame counter)."""
        tensors = {k: v.clone() for k, v in self.state.items()}
        tensors[FRAME_COUNTER] = torch.tensor([self.frames_done], dtype=torch.int64)
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Resume the stream saved by :meth:`state_dict_tensors`."""
        tensors = dict(tensors)
        counter = tensors.pop(FRAME_COUNTER, None)
        self.frames_done = int(counter.item()) if counter is not None else 0
        self.state = {k: v.clone() for k, v in tensors.items()}
