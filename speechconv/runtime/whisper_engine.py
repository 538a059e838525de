"""The whisper engine: a keyword head over Whisper encoder frames, run with numpy, CTranslate2 (the encoder)
and onnxruntime (the head), no PyTorch.

A whisper-head model directory (written by :func:`speechconv.export.whisper_head.save_whisper_model`) has a
``config.yaml`` whose ``frontend`` is ``{name: whisper, ...}`` and a ``model.onnx`` head. Audio is encoded
one of two ways, both frame for frame what :mod:`speechconv.frontends.whisper` computes offline:

* ``window`` (``speechconv detect``, files): 30 s windows overlapping by ``2 * context_seconds``
  (:func:`~speechconv.frontends.whisper.stream_frames`); a frame is scored once the window that holds it
  in its middle is complete, so scores come up to 30 s after their audio;
* ``live`` (``speechconv listen``): every ``hop_seconds`` of frames from a short piece with
  ``left_seconds`` before and ``right_seconds`` after (:func:`~speechconv.frontends.whisper.live_frames`):
  a score is ready ``right_seconds`` after its audio, plus the encoding. The config's ``live_detector``
  options (a threshold chosen on live frames) then replace those of ``detector``.

The head sees 9 neighbouring frames, so each score also waits for 4 frames (80 ms) after its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from speechconv.errors import ConfigError
from speechconv.frontends import whisper
from speechconv.pretrained import CONFIG_FILE, ONNX_FILE, read_yaml

MODES = ("window", "live")
#: Whisper log-mel bands a ``--plot`` shows.
PLOT_FEATURE_RATE = whisper.SAMPLE_RATE / whisper.HOP_LENGTH


def is_whisper_model(path: str | os.PathLike[str]) -> bool:
    """True for a model directory whose config names the whisper front-end."""
    config_file = Path(path) / CONFIG_FILE
    if not config_file.is_file():
        return False
    config = read_yaml(config_file)
    return isinstance(config, dict) and isinstance(config.get("frontend"), dict) \
        and config["frontend"].get("name") == "whisper"


class HeadScorer:
    """The head over frames that arrive in pieces: ``push(frames)`` gives the scores of every frame whose
    ``context`` right neighbours have arrived, ``finish()`` the rest; the scores equal one pass of the head
    over all the frames (its convolution pads with zeros at both ends)."""

    def __init__(self, session, context: int):
        self.session, self.context = session, context
        self.input = session.get_inputs()[0].name
        self._frames: np.ndarray | None = None  # up to `context` scored frames, then the unscored ones
        self._scored_left = 0

    def push(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        self._frames = frames if self._frames is None else np.concatenate([self._frames, frames])
        return self._score(len(self._frames) - self.context)

    def finish(self) -> np.ndarray:
        return self._score(len(self._frames)) if self._frames is not None else np.zeros(0, dtype=np.float32)

    def _score(self, ready: int) -> np.ndarray:
        """Scores of the buffered frames up to ``ready``; keeps ``context`` of them for the next call."""
        if ready <= self._scored_left:
            return np.zeros(0, dtype=np.float32)
        scores = self.session.run(None, {self.input: self._frames[None]})[0][0]
        out = scores[self._scored_left: ready].astype(np.float32)
        keep_from = max(0, ready - self.context)
        self._frames, self._scored_left = self._frames[keep_from:], ready - keep_from
        return out


class WhisperModel:
    """A whisper-head model directory as detection uses it (keyword, sample rate, detector options, frame
    period, ``open_stream``), like the other engines' models (:mod:`speechconv.runtime`)."""

    engine = "whisper"

    def __init__(self, directory: str | os.PathLike[str], threads: int | None = None, mode: str = "window",
                 encoder=None):
        from speechconv.runtime.onnx_engine import inference_session

        self.path = Path(directory)
        config = read_yaml(self.path / CONFIG_FILE)
        where = str(self.path / CONFIG_FILE)
        self.config = check_config(config, where)
        if mode not in MODES:
            raise ConfigError(f"whisper mode must be one of {MODES}, got {mode!r}")
        onnx_file = self.path / ONNX_FILE
        if not onnx_file.is_file():
            raise ConfigError(f"{self.path}: not a whisper-head model directory ({ONNX_FILE} is missing)")
        self.mode = mode
        self.keyword = config["keyword"]
        self.labels = list(config["labels"])
        self.keyword_index = self.labels.index(self.keyword)
        self.detector = dict(config.get("detector") or {})
        if mode == "live":  # live frames score differently: their own threshold, where the model has one
            self.detector.update(config.get("live_detector") or {})
        self.sample_rate = whisper.SAMPLE_RATE
        self.output_period = whisper.FRAME_SECONDS
        self.context = int(config["model"].get("kernel", 9)) // 2
        self.session = inference_session(onnx_file, threads)
        self.encoder = encoder if encoder is not None else whisper.WhisperEncoder(threads=threads or 2)

    def open_stream(self) -> WhisperStream:
        return WhisperStream(self)


def check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(config).__name__}")
    missing = [k for k in ("frontend", "model", "labels", "keyword") if k not in config]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    if not isinstance(config["model"], dict) or config["model"].get("name") != "whisper_head":
        raise ConfigError(f"{where}: a whisper front-end needs model 'whisper_head', got {config['model']!r}")
    labels = config["labels"]
    if not isinstance(labels, list) or config["keyword"] not in labels:
        raise ConfigError(f"{where}: keyword {config['keyword']!r} is not one of the labels {labels!r}")
    return config


class WhisperStream:
    """One audio stream through a :class:`WhisperModel`: ``feed(samples) -> (times, scores)`` of the frames
    that are ready, ``finish()`` the rest."""

    def __init__(self, model: WhisperModel):
        self.model = model
        frontend = model.config["frontend"]
        if model.mode == "window":
            self.frames = whisper.WindowFrames(model.encoder, float(frontend.get("context_seconds", 1.0)))
        else:
            live = frontend.get("live") or {}
            self.frames = whisper.LiveFrames(model.encoder, float(live.get("left_seconds", 3.0)),
                                             float(live.get("right_seconds", 0.5)), float(live.get("hop_seconds", 1.0)))
        self.head = HeadScorer(model.session, model.context)
        self._scored = 0
        self._plot_tail = np.zeros(0, dtype=np.float32)

    def _scores(self, pieces: list[np.ndarray], final: bool) -> tuple[np.ndarray, np.ndarray]:
        parts = [self.head.push(p) for p in pieces]
        if final:
            parts.append(self.head.finish())
        scores = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        times = (np.arange(self._scored, self._scored + len(scores)) + 0.5) * whisper.FRAME_SECONDS
        self._scored += len(scores)
        return times, scores

    def feed(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._scores(self.frames.push(np.asarray(samples, dtype=np.float32).reshape(-1)), final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        return self._scores(self.frames.finish(), final=True)

    @property
    def feature_rate(self) -> float:
        return PLOT_FEATURE_RATE

    def plot_features(self, samples: np.ndarray) -> np.ndarray:
        """``(80, n)`` Whisper log-mel (log10 power, before its floor and scaling) of the 10 ms frames that
        ``samples`` completes (uncentred 25 ms windows)."""
        buffer = np.concatenate([self._plot_tail, np.asarray(samples, dtype=np.float32).reshape(-1)])
        n = (len(buffer) - whisper.N_FFT) // whisper.HOP_LENGTH + 1 if len(buffer) >= whisper.N_FFT else 0
        self._plot_tail = buffer[n * whisper.HOP_LENGTH:]
        if n == 0:
            return np.zeros((whisper.N_MELS, 0), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buffer[: (n - 1) * whisper.HOP_LENGTH + whisper.N_FFT],
                                                          whisper.N_FFT)[:: whisper.HOP_LENGTH]
        power = np.abs(np.fft.rfft(frames * whisper.hann_window(), axis=-1)) ** 2
        return np.log10(np.maximum(whisper.mel_filters() @ power.T, 1e-10)).astype(np.float32)
