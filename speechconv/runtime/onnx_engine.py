"""The onnxruntime engine: a model's exported streaming step (audio samples in, scores and state out)
run with numpy and onnxruntime only, no torch.

:class:`OnnxStep` runs the step one call at a time. :class:`OnnxModel` is a loaded model as detection
uses it (keyword, sample rate, detector options, frame period) and :meth:`OnnxModel.open_stream` starts a
stream: :meth:`OnnxStream.feed` takes audio of any length, runs the step on whole output periods (at
most :data:`MAX_CALL_SECONDS` per call) and keeps the rest for the next call, so it gives the same
frames, with the same times, as the PyTorch :class:`~speechconv.streaming.StreamingEngine`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from speechconv.errors import ConfigError
from speechconv.runtime.spec import (
    CHUNK_INPUT,
    INITIAL_STATE_KEY,
    METADATA_KEY,
    StepSpec,
    decode_arrays,
    state_input_name,
)

#: Longest audio per call of a dynamic-chunk step: large calls amortise onnxruntime's per-call cost,
#: and PCEN's scan is exact up to 2**16 feature frames per call.
MAX_CALL_SECONDS = 10.0
#: What ``--plot`` shows with this engine: log power in this many equal-width frequency bands.
PLOT_BANDS = 40


def read_metadata(props: dict[str, str], where: str) -> tuple[StepSpec, dict[str, np.ndarray]]:
    if METADATA_KEY not in props or INITIAL_STATE_KEY not in props:
        raise ConfigError(f"{where}: not a speechconv streaming step (no '{METADATA_KEY}' metadata)")
    return StepSpec.from_json(props[METADATA_KEY], where), decode_arrays(props[INITIAL_STATE_KEY], where)


def inference_session(path: str | os.PathLike[str], threads: int | None = None):
    """An onnxruntime CPU session; a file it cannot load is one :class:`ConfigError` line."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ConfigError(f"{path}: cannot load ONNX model ({err})") from None


class OnnxStep:
    """Runs an exported step with onnxruntime: ``feed(chunk) -> posteriors (C, n)``, state kept inside."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, session=None):
        self.session = session if session is not None else inference_session(path, threads)
        props = self.session.get_modelmeta().custom_metadata_map
        self.spec, self.initial_state = read_metadata(props, str(path))
        self.reset()

    def reset(self) -> None:
        self.state = [self.initial_state[n] for n in self.spec.state_names]
        self.frames_done = 0

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        """Posteriors ``(C, n)`` of one chunk: exactly ``chunk_samples`` samples, or with a dynamic chunk
        axis any positive multiple of ``samples_per_output`` (``n`` frames per multiple)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(1, -1)
        size, period = chunk.shape[1], self.spec.samples_per_output
        if (size != self.spec.chunk_samples if not self.spec.dynamic_chunk else (size <= 0 or size % period)):
            need = f"a positive multiple of {period}" if self.spec.dynamic_chunk else f"{self.spec.chunk_samples}"
            raise ValueError(f"chunks must have {need} samples, got {size}")
        feeds = {CHUNK_INPUT: chunk}
        feeds.update({state_input_name(n): s for n, s in zip(self.spec.state_names, self.state)})
        outputs = self.session.run(None, feeds)
        self.state = outputs[1:]
        self.frames_done += outputs[0].shape[-1]
        return outputs[0][0]


class OnnxModel:
    """An exported keyword spotter as detection uses it; ``detector`` and ``keyword`` may be overridden
    by the model directory's ``config.yaml``."""

    engine = "onnx"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, detector: dict | None = None,
                 keyword: str | None = None):
        self.path = Path(path)
        self.session = inference_session(path, threads)
        self.spec, self.initial_state = read_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.keyword = keyword or self.spec.keyword
        self.detector = dict(self.spec.detector if detector is None else detector)
        self.labels = list(self.spec.labels)
        self.sample_rate = int(self.spec.sample_rate)
        self.output_period = float(self.spec.output_frame_period)
        self.keyword_index = int(self.spec.keyword_index)
        if self.spec.dynamic_chunk:
            period = self.spec.samples_per_output
            self.call_samples = max(period, int(MAX_CALL_SECONDS * self.sample_rate) // period * period)
        else:
            self.call_samples = self.spec.chunk_samples

    def open_stream(self) -> OnnxStream:
        return OnnxStream(self)


class OnnxStream:
    """One audio stream through an :class:`OnnxModel` (its state, frame clock and unconsumed samples)."""

    def __init__(self, model: OnnxModel):
        self.model = model
        self.step = OnnxStep(model.path, session=model.session)
        self._pending = np.zeros(0, dtype=np.float32)
        self._plot_tail = np.zeros(0, dtype=np.float32)
        self._samples = 0

    def feed(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(times (n,), keyword posteriors (n,))`` of the output frames that ``samples`` (1-D) completes,
        as far as whole output periods reach; :meth:`finish` gives the frames the rest completes."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += len(samples)
        buffer = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        size = self.model.call_samples
        usable = len(buffer) if self.model.spec.dynamic_chunk else len(buffer) // size * size
        usable -= usable % self.model.spec.samples_per_output
        first = self.step.frames_done
        scores = [self.step.feed(buffer[start:min(start + size, usable)])[self.model.keyword_index]
                  for start in range(0, usable, size)]
        self._pending = buffer[usable:].copy()
        scores = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        times = self.model.spec.output_times(first, len(scores))
        return times, scores

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of stream: the frames completed by the samples after the last whole period (which may end
        before the period does), from one step on those samples padded with zeros; frames that would
        need the padding are dropped. The stream cannot be fed after this."""
        spec = self.model.spec
        unit = spec.samples_per_output if spec.dynamic_chunk else spec.chunk_samples  # a fixed step takes one size
        if not len(self._pending):
            return np.zeros(0), np.zeros(0, dtype=np.float32)
        padded = np.zeros(-(-len(self._pending) // unit) * unit, dtype=np.float32)
        padded[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        first = self.step.frames_done
        scores = self.step.feed(padded)[self.model.keyword_index]
        times = spec.output_times(first, len(scores))
        duration = self._samples / self.model.sample_rate
        keep = times + self.model.spec.audio_end_lag <= duration + 1e-9
        return times[keep], scores[keep]

    @property
    def feature_rate(self) -> float:
        timing = self.model.spec.frame_timing
        return timing["sample_rate"] / timing["hop"]

    def plot_features(self, samples: np.ndarray) -> np.ndarray:
        """``(PLOT_BANDS, n)`` log power of the frames ``samples`` completes (numpy; for ``--plot``)."""
        timing = self.model.spec.frame_timing
        n_fft, hop = int(timing["n_fft"]), int(timing["hop"])
        buffer = np.concatenate([self._plot_tail, np.asarray(samples, dtype=np.float32).reshape(-1)])
        n = (len(buffer) - n_fft) // hop + 1 if len(buffer) >= n_fft else 0
        self._plot_tail = buffer[n * hop:]
        if n == 0:
            return np.zeros((PLOT_BANDS, 0), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buffer[: (n - 1) * hop + n_fft], n_fft)[::hop]
        power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2
        edges = np.linspace(0, power.shape[-1], PLOT_BANDS + 1).astype(int)
        bands = np.add.reduceat(power, edges[:-1], axis=-1) / np.diff(edges)
        return np.log10(bands.T + 1e-10).astype(np.float32)
